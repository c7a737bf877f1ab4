"""Time to first verdict: each crosscheck command as a fresh process against a bare ``python -c "import torch"``.

Every round runs each command once, each right after (or, every other round, right before) a bare torch
import, all as subprocesses of the same interpreter with the same environment and OMP_NUM_THREADS=1, from the
repository root. The table gives each command's median wall time, the median of the bare imports and the
ratio of the two; then ``-X importtime`` of the slowest command: its largest imports by cumulative time and
whether torch's compiler stack (torch._dynamo, sympy, torch._inductor) was loaded. A benchmark: it exits 0
whatever the times, and whatever exit code a command gives (a diagnosed mismatch exits 1).

    python benchmarks/bench_startup.py            # -n 5 rounds; --json for machine-readable output
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASELINE = ("import torch", ["-c", "import torch"])
COMMANDS = [
    ("crosscheck", []),
    ("crosscheck verify --spec examples/lenet5.toml --steps 1", ["verify", "--spec", "examples/lenet5.toml",
                                                                  "--steps", "1"]),
    ("crosscheck explain", ["explain"]),
    ("crosscheck diagnose --wrong flipped-kernel-dE_df", ["diagnose", "--wrong", "flipped-kernel-dE_df"]),
    ("crosscheck diagnose --list", ["diagnose", "--list"]),
    ("crosscheck train --steps 1", ["train", "--steps", "1"]),
    ("crosscheck diagnose --wrong flipped-kernel-dE_df --plot", ["diagnose", "--wrong", "flipped-kernel-dE_df",
                                                                "--plot", str(pathlib.Path(tempfile.gettempdir()) /
                                                                              "crosscheck-startup.png")]),
]
COMPILER_STACK = ("torch._dynamo", "sympy", "torch._inductor", "torch._decomp.decompositions_for_jvp")


def _env():
    return os.environ | {"OMP_NUM_THREADS": "1"}


def _argv(args):
    return [sys.executable, *args] if args[:1] == ["-c"] else [sys.executable, "-m", "crosscheck", *args]


def _time(args):
    """Wall seconds of one run of the process; its exit code."""
    start = time.perf_counter()
    rc = subprocess.run(_argv(args), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        check=False).returncode
    return time.perf_counter() - start, rc


def measure(rounds):
    """{label: [seconds]} for the baseline and every command, interleaved; {label: exit code}."""
    times, codes = {label: [] for label, _ in [BASELINE, *COMMANDS]}, {}
    for r in range(rounds):
        for label, args in COMMANDS:
            pair = [BASELINE, (label, args)] if r % 2 == 0 else [(label, args), BASELINE]
            for name, argv in pair:
                seconds, codes[name] = _time(argv)
                times[name].append(seconds)
    return times, codes


def importtime(args, top):
    """-X importtime of one run -> (the `top` largest imports by cumulative ms, compiler-stack modules loaded)."""
    err = subprocess.run([sys.executable, "-X", "importtime", *_argv(args)[1:]], cwd=ROOT, env=_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
            depth = (len(name) - len(name.lstrip())) // 2
            rows.append({"module": name.strip(), "depth": depth, "cumulative_ms": int(cumulative_us) / 1e3,
                         "self_ms": int(self_us) / 1e3})
    loaded = {row["module"] for row in rows}
    stack = [m for m in COMPILER_STACK if any(name == m or name.startswith(m + ".") for name in loaded)]
    return sorted(rows, key=lambda row: -row["cumulative_ms"])[:top], stack


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", "--rounds", type=int, default=5, help="runs of each command (default 5)")
    p.add_argument("--top", type=int, default=12, help="imports listed for the slowest command (default 12)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    times, codes = measure(args.rounds)
    base = statistics.median(times[BASELINE[0]])
    rows = [{"command": label, "median_s": statistics.median(times[label]), "exit_code": codes[label],
             "ratio": statistics.median(times[label]) / base, "samples_s": times[label]}
            for label, _ in [BASELINE, *COMMANDS]]
    slowest = max(rows[1:], key=lambda row: row["median_s"])
    top, compiler = importtime(dict(COMMANDS)[slowest["command"]], args.top)
    result = {"python": sys.version.split()[0], "rounds": args.rounds, "OMP_NUM_THREADS": "1", "commands": rows,
              "slowest": {"command": slowest["command"], "imports": top, "compiler_stack_loaded": compiler}}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.rounds} rounds, each command next to a bare `python -c \"import torch\"`; medians, OMP_NUM_THREADS=1")
    print(f"\n{'command':<56} {'median':>8} {'x import torch':>15}  exit")
    for row in rows:
        print(f"{row['command']:<56} {row['median_s']:>7.2f}s {row['ratio']:>15.2f}  {row['exit_code']}")
    print(f"\n-X importtime of the slowest, {slowest['command']}; torch's compiler stack loaded: "
          f"{', '.join(compiler) or 'none of ' + ', '.join(COMPILER_STACK)}")
    print(f"{'module':<60} {'cumulative':>11} {'self':>9}")
    for row in top:
        print(f"{'  ' * row['depth'] + row['module']:<60} {row['cumulative_ms']:>9.0f}ms {row['self_ms']:>7.0f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
