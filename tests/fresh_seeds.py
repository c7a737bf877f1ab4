"""The whole suite, again and again, with fresh random seeds: no test passes only at the seeds it was written at.

    python tests/fresh_seeds.py [RUNS] [--seeds S1,S2,...]      (tox -e fresh-seeds)
    python tests/fresh_seeds.py --report

Each run draws a base seed S (or takes the next of --seeds) and runs pytest on both cores with
CROSSCHECK_SEED_BASE=S (tests/runs.py: the registry's, the grids', the catalogue's and the no-false-alarm cases'
seeds shifted by S) and Hypothesis not derandomized, seeded with S, 200 examples per property (the "fresh" profile of
tests/conftest.py). Prints one line per run and a summary with every seed; exits 1 if any run failed. A failing
run is reproduced by running pytest with the same CROSSCHECK_SEED_BASE, HYPOTHESIS_PROFILE=fresh and
--hypothesis-seed.

A run takes about a quarter of an hour on two cores, so twenty take longer than one sitting. Each run's outcome is
added as it ends to tests/fresh_seeds_record.json (committed), with the digest of the files the suite is made of
(tracked and untracked, not ignored; the records left out): runs made at different times on the same files add up,
and a run during which the files changed is not recorded.
The summary line and --report count the runs on the files as they are now, and --report exits 0 only when there
are at least RUNS of them and none failed.
"""

import argparse
import hashlib
import json
import os
import pathlib
import secrets
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECORD = ROOT / "tests" / "fresh_seeds_record.json"
NOT_THE_SUITE = ("tests/fresh_seeds_record.json", "tests/mutation_record/")  # records of runs, read by no test


def digest(root=ROOT):
    """sha256 over the path and bytes of every file of the checkout at root (tracked and untracked, not ignored), the
    records in NOT_THE_SUITE left out: the same digest is the same suite on the same code."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    h = hashlib.sha256()
    for name in sorted(filter(None, listed)):
        path = root / name
        if name.startswith(NOT_THE_SUITE) or not path.is_file():
            continue
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def run(seed):
    env = os.environ | {"CROSSCHECK_SEED_BASE": str(seed), "HYPOTHESIS_PROFILE": "fresh", "OMP_NUM_THREADS": "1",
                        "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider",
               f"--hypothesis-seed={seed}"]
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
    return done.returncode, summary, time.monotonic() - start, done.stdout


def recorded(path, tree):
    """The runs of the record at path made on the files whose digest is `tree`."""
    runs = json.loads(path.read_text())["runs"] if path.is_file() else []
    return [r for r in runs if r["tree"] == tree]


def add(path, entry):
    """One run's outcome appended to the record at path."""
    runs = json.loads(path.read_text())["runs"] if path.is_file() else []
    path.write_text(json.dumps({"runs": [*runs, entry]}, indent=1) + "\n")


def tally(runs):
    """The summary line of runs on one digest."""
    failed = [r["seed"] for r in runs if not r["passed"]]
    return (f"{len(runs)} runs, {len(failed)} failed; seeds: {','.join(str(r['seed']) for r in runs)}"
            + (f"; failed: {','.join(map(str, failed))}" if failed else ""))


def main(argv=None, record=RECORD, root=ROOT):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=20)
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=None)
    parser.add_argument("--report", action="store_true",
                        help="only count the recorded runs on the files as they are now (exit 0: RUNS, none failed)")
    args = parser.parse_args(argv)
    tree = digest(root)
    if args.report:
        runs = recorded(record, tree)
        print(f"on files {tree[:12]}: {tally(runs)}")
        return 0 if len(runs) >= args.runs and all(r["passed"] for r in runs) else 1
    seeds = args.seeds or [secrets.randbelow(10**6) + 1 for _ in range(args.runs)]
    done = []
    for i, seed in enumerate(seeds, 1):
        code, summary, seconds, out = run(seed)
        verdict = "ok  " if code == 0 else "FAIL"
        print(f"run {i:2d}/{len(seeds)}  seed {seed:7d}  {verdict}  {seconds:5.0f} s  {summary}", flush=True)
        after = digest(root)
        if after == tree:
            add(record, {"seed": seed, "passed": code == 0, "seconds": round(seconds), "summary": summary,
                         "tree": tree, "date": time.strftime("%Y-%m-%d", time.gmtime())})
        else:
            print(f"run {i:2d}: the files changed while it ran, not recorded", flush=True)
            tree = after
        done.append({"seed": seed, "passed": code == 0})
        if code != 0:
            print(out[-4000:], flush=True)
    print(tally(done))
    print(f"on files {tree[:12]}, with the runs recorded before: {tally(recorded(record, tree))}")
    return 0 if all(r["passed"] for r in done) else 1


if __name__ == "__main__":
    sys.exit(main())
