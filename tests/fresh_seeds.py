"""The whole suite, again and again, with fresh random seeds: no test passes only at the seeds it was written at.

    python tests/fresh_seeds.py [RUNS] [--seeds S1,S2,...]      (tox -e fresh-seeds)

Each run draws a base seed S (or takes the next of --seeds) and runs pytest on both cores with
CROSSCHECK_SEED_BASE=S (tests/runs.py: the registry's, the grids', the catalogue's and the no-false-alarm cases'
seeds shifted by S) and Hypothesis not derandomized, seeded with S, 200 examples per property (the "fresh" profile of
tests/conftest.py). Prints one line per run and a summary with every seed; exits 1 if any run failed. A failing
run is reproduced by running pytest with the same CROSSCHECK_SEED_BASE, HYPOTHESIS_PROFILE=fresh and
--hypothesis-seed.
"""

import argparse
import os
import pathlib
import secrets
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(seed):
    env = os.environ | {"CROSSCHECK_SEED_BASE": str(seed), "HYPOTHESIS_PROFILE": "fresh", "OMP_NUM_THREADS": "1",
                        "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider",
               f"--hypothesis-seed={seed}"]
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
    return done.returncode, summary, time.monotonic() - start, done.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=20)
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=None)
    args = parser.parse_args(argv)
    seeds = args.seeds or [secrets.randbelow(10**6) + 1 for _ in range(args.runs)]
    failed = []
    for i, seed in enumerate(seeds, 1):
        code, summary, seconds, out = run(seed)
        verdict = "ok  " if code == 0 else "FAIL"
        print(f"run {i:2d}/{len(seeds)}  seed {seed:7d}  {verdict}  {seconds:5.0f} s  {summary}", flush=True)
        if code != 0:
            failed.append(seed)
            print(out[-4000:], flush=True)
    print(f"{len(seeds)} runs, {len(failed)} failed; seeds: {','.join(map(str, seeds))}"
          + (f"; failed: {','.join(map(str, failed))}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
