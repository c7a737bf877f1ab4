"""Shared test set-up: one thread per process, so two xdist workers share two cores cleanly; Hypothesis profiles."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402  (the thread variables must be set before numpy/torch load BLAS)

torch.set_num_threads(1)

from hypothesis import settings  # noqa: E402

# "ci" (loaded when CI is set): deterministic, 1,000 examples per property, the failing example's blob printed.
# "dev" (the default): quicker, still 50 examples. HYPOTHESIS_PROFILE=<name> picks one explicitly.
settings.register_profile("ci", max_examples=1000, derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=50, deadline=None, print_blob=True)
# "fresh" (tests/fresh_seeds.py): 200 examples, not derandomized; the seed comes from --hypothesis-seed.
settings.register_profile("fresh", max_examples=200, database=None, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
