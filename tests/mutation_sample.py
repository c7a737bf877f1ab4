"""A mutation score estimated from a random sample of mutants, when the full run does not fit the time there is.

    python tests/mutation_sample.py [N] [--seed S] [--max-children C]      (tox -e mutation-sample)

The full run (tox -e mutation) tests some 25,000 mutants of manual/ and crosscheck/: hours on two cores. This script
tests N of them (default 1,000) drawn uniformly by a seeded random choice among every mutant mutmut generates, and
prints the score with its 95 % Wilson interval, the count of each verdict, and the name of every survivor (read each
with `mutmut show NAME`; test it again after a new test with `mutmut run NAME`). A verdict mutants/ already holds
(from an earlier run of either kind) is kept, not tested again.

The score counts a mutant as detected when a test failed, timed out or crashed under it; one that survived, had no
test reach it, or was not decided counts against the score. Surviving mutants judged equivalent (no test can tell
them apart from the original) are listed with the reason in the closing note of the issue that asked for the run.
"""

import argparse
import json
import math
import pathlib
import random
import subprocess
import sys
from collections import Counter

ROOT = pathlib.Path(__file__).resolve().parents[1]
DETECTED = {1, 3, 24, -24, 36, 152, 255, -9, -11}  # mutmut's exit codes: killed, timeout, segfault
NAMES = {0: "survived", 33: "no tests", 5: "no tests", None: "not checked"}


def verdicts():
    """{mutant name: exit code or None} over mutants/ (mutmut's .meta files)."""
    found = {}
    for meta in sorted((ROOT / "mutants").rglob("*.meta")):
        found |= json.loads(meta.read_text())["exit_code_by_key"]
    return found


def wilson(detected, n, z=1.96):
    """The 95 % Wilson score interval of a proportion detected/n -> (low, high)."""
    p = detected / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def mutmut(*args):
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=ROOT).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-children", type=int, default=2)
    args = parser.parse_args(argv)
    if not verdicts():
        # mutmut generates the mutants (and its per-test statistics) on its way to a name it then finds nothing
        # for: the run stops there with an assertion, and the names are on disk.
        mutmut("run", "--max-children", str(args.max_children), "no-mutant-is-named-this")
    everything = verdicts()
    if not everything:
        print("mutmut generated no mutants (see its output above)", file=sys.stderr)
        return 2
    sample = sorted(random.Random(args.seed).sample(sorted(everything), min(args.n, len(everything))))
    untested = [name for name in sample if everything[name] is None]
    if untested:
        mutmut("run", "--max-children", str(args.max_children), *untested)
    found = verdicts()
    codes = [found[name] for name in sample]
    detected = sum(code in DETECTED for code in codes)
    low, high = wilson(detected, len(sample))
    counts = Counter("detected" if code in DETECTED else NAMES.get(code, f"exit {code}") for code in codes)
    print(f"{len(sample)} of {len(everything)} mutants (seed {args.seed}): {detected} detected, score "
          f"{detected / len(sample):.1%} (95 % interval {low:.1%} to {high:.1%}); "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for name, code in zip(sample, codes, strict=True):
        if code not in DETECTED:
            print(f"  {NAMES.get(code, f'exit {code}')}: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
