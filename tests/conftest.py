"""Shared test set-up: one thread per process, so two xdist workers share two cores cleanly."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402  (the thread variables must be set before numpy/torch load BLAS)

torch.set_num_threads(1)
