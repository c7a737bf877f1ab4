"""The bad-input table: hostile arguments, files, descriptions, users' modules and API calls, each answered the
way the README promises. On the command line: exit 2 (bad input) or 3 (the code under test raised), one line on
stderr that names the argument, what it got and what it needs, no traceback, nothing on stdout; with --json the
same line as a JSON document on stdout instead. From the API: an InputError with the whole message. Sizes that
cannot fit are refused before anything is allocated. Ctrl-C and a reader that goes away are tested on a real
process at the end.

The descriptions' own table (BAD_DESCRIPTIONS and BAD_FILES, through `verify --spec-json` too) is in
tests/test_spec.py; what a user's module *returns* wrongly is a finding on its rows, not bad input
(test_a_wrong_return_is_a_finding below).
"""

import json
import os
import pathlib
import re
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from run_files import npy_bytes, npz_bytes, synthetic_run

from crosscheck import cli, plots, runfile
from crosscheck.api import Tolerance, check_layer
from manual import functional as F
from manual import optim, seed_network
from netdesc import InputError

ROOT = pathlib.Path(__file__).resolve().parents[1]
# a folder no process can create (procfs takes no new entries): a mutant that skips the check this path must fail
# cannot make it exist for the runs after it, as one once made /nonexistent
NOWHERE = "/proc/nonexistent"
LENET = str(ROOT / "examples" / "lenet5.toml")
SMALL3 = str(ROOT / "examples" / "small3conv.toml")
RAISED = "; --traceback shows where"  # the tail of every exit-3 line

# Users' modules: name -> text. "{small3}" is the path of examples/small3conv.toml.
MODULES = {
    "syntax.py": "def (:\n",
    "import_raises.py": "raise RuntimeError('boom at import')\n",
    "import_exits.py": "import sys\nsys.exit(5)\n",
    "nothing.py": "X = 1\n",
    "empty.py": "",
    "spec_only.py": "SPEC = {small3!r}\n",
    "table_list.py": "LAYER_BACKWARD = [1]\n",
    "unknown_equation.py": "LAYER_BACKWARD = {'dO_dZZ': abs}\n",
    "not_callable.py": "LAYER_BACKWARD = {'dO_dZ2': 1}\n",
    "equation_signature.py": "def dO_dZ2():\n    return 1\nLAYER_BACKWARD = {'dO_dZ2': dO_dZ2}\n",
    "sgd_int.py": "SGD_STEP = 2\n",
    "sgd_signature.py": "def step(params, grads):\n    return params\nSGD_STEP = step\n",
    "case_list.py": "CASE = [1]\n",
    "case_field.py": "CASE = {'shape': 3}\n",
    "case_batch.py": "CASE = {'batch': 0}\n",
    "spec_missing.py": "SPEC = 'missing.toml'\n",
    "spec_no_layers.py": "SPEC = {'input_shape': [1, 2, 2]}\n",
    "layer_key.py": "SPEC = {small3!r}\ndef bw(dout, cache):\n    return (dout,)\nLAYER_BACKWARD = {99: bw}\n",
    "layer_signature.py": "SPEC = {small3!r}\ndef bw(dout):\n    return (dout,)\nLAYER_BACKWARD = {6: bw}\n",
    "forward_signature.py": "SPEC = {small3!r}\ndef fw(x):\n    return x, x\nLAYER_FORWARD = {6: fw}\n",
    "optimizer_signature.py": "SPEC = {small3!r}\ndef step(params, grads, state, lr):\n    return params, state\n"
                              "OPTIMIZER_STEP = step\n",
    "inputs_signature.py": "SPEC = {small3!r}\ndef draw(spec):\n    return None\nINPUTS = draw\n",
    "equation_raises.py": "def dO_dZ2(O):\n    raise ValueError('mine')\nLAYER_BACKWARD = {'dO_dZ2': dO_dZ2}\n",
    "backward_raises.py": "SPEC = {small3!r}\ndef bw(dout, cache):\n    raise ZeroDivisionError('x')\n"
                          "LAYER_BACKWARD = {6: bw}\n",
    "backward_exits.py": "import sys\nSPEC = {small3!r}\ndef bw(dout, cache):\n    sys.exit(7)\n"
                         "LAYER_BACKWARD = {6: bw}\n",
    "backward_recurses.py": "SPEC = {small3!r}\ndef bw(dout, cache):\n    return bw(dout, cache)\n"
                            "LAYER_BACKWARD = {6: bw}\n",
    "backward_memory.py": "SPEC = {small3!r}\ndef bw(dout, cache):\n    raise MemoryError\nLAYER_BACKWARD = {6: bw}\n",
    "forward_raises.py": "SPEC = {small3!r}\ndef fw(x, params, options):\n    raise KeyError('w')\n"
                         "LAYER_FORWARD = {6: fw}\n",
    "inputs_raise.py": "SPEC = {small3!r}\ndef draw(spec, dtype, seed):\n    raise OSError('no data')\nINPUTS = draw\n",
    "builtin.py": "LAYER_BACKWARD = {'dZ2_dW': max}\n",  # no signature to check: called, it raises
    "step_raises.py": "def step(params, grads, lr):\n    raise ArithmeticError('lr')\nSGD_STEP = step\n",
}
FILES = {"bad.toml": "not = [toml\n", "binary.toml": b"\x00\x01\x02\xff", "nolayers.toml": "input_shape = [1, 8, 8]\n",
         "deep.json": "[" * 100_000 + "]" * 100_000,
         # saved runs (crosscheck plot)
         "run.npz": npz_bytes(**synthetic_run()), "empty.npz": b"", "truncated.npz": npz_bytes(**synthetic_run())[:300],
         "objects.npz": npz_bytes(allow_pickle=True, loss_manual=np.array([{}], dtype=object)),
         "partial.npz": npz_bytes(**{k: v for k, v in synthetic_run().items() if k != "rtol"}),
         "zero-rtol.npz": npz_bytes(**synthetic_run() | {"rtol": np.array(0.0)}),
         "array.npy": npy_bytes(np.zeros(3))}

CATALOGUE_NAMES = "needs one of scaled-dE_dW, scaled-dE_df, transposed-dE_dW, "  # the start of the list of names

# (id, argv, exit code, the whole stderr line after "crosscheck: error: "; a trailing "..." matches the start only)
# "{tmp}" is the folder of MODULES and FILES.
CLI = [
    # the slides' network (crosscheck seed, the default command)
    ("shape-zero", "--shape 0", 2,
     "argument --shape: got '0', needs two positive sizes such as 8x6 or one such as 5"),
    ("shape-half", "--shape 8x", 2, "argument --shape: got '8x', needs HxW or a single size such as 8x6 or 5"),
    ("shape-text", "--shape abc", 2, "argument --shape: got 'abc', needs HxW or a single size such as 8x6 or 5"),
    ("shape-3d", "--shape 8x6x4", 2,
     "argument --shape: got '8x6x4', needs two positive sizes such as 8x6 or one such as 5"),
    ("shape-huge", "--shape 100000x100000 --max-memory 12G", 2,
     "memory: the slides' network 100000x100000-k3-out1-N4-sum-float64-seed0 needs about 39 TB, more than the budget "
     "of 12 GB (--max-memory SIZE sets it)"),
    ("kernel-too-big", "--k 9", 2, "kernel_shape: got 9x9, needs at most the input's 8x8"),
    ("kernel-zero", "--k 0", 2, "argument --k: got '0', needs two positive sizes such as 8x6 or one such as 5"),
    ("lr-nan", "--lr nan", 2, "lr: got nan, needs a finite number > 0"),
    ("lr-negative", "--lr -1", 2, "lr: got -1.0, needs a finite number > 0"),
    ("lr-zero", "--lr 0", 2, "lr: got 0.0, needs a finite number > 0"),
    ("lr-overflow", "--lr 1e400", 2, "lr: got inf, needs a finite number > 0"),
    ("lr-text", "--lr fast", 2, "argument --lr: invalid float value: 'fast'"),
    ("steps-zero", "--steps 0", 2, "steps: got 0, needs an integer >= 1"),
    ("steps-over-the-bound", "--steps 100001", 2,
     "steps: got 100001, needs at most 100,000 (a training run on one batch)"),
    ("batch-zero", "--batch 0", 2, "batch: got 0, needs an integer >= 1"),
    ("n-out-negative", "--n-out -2", 2, "n_out: got -2, needs an integer >= 1"),
    ("seed-negative", "--seed -1", 2, "seed: got -1, needs an integer >= 0"),
    ("seed-float", "--seed 1e3", 2, "argument --seed: invalid int value: '1e3'"),
    ("dtype-float16", "--dtype float16", 2,
     "argument --dtype: invalid choice: 'float16' (choose from 'float32', 'float64')"),
    ("reduction-max", "--reduction max", 2, "argument --reduction: invalid choice: 'max' (choose from 'sum', 'mean')"),
    ("inject-unknown", "--inject nope", 2, f"--inject: got 'nope', {CATALOGUE_NAMES}..."),
    ("inject-a-layers-mistake", "--inject conv2d-dw-flipped", 2,
     "--inject: got 'conv2d-dw-flipped', a mistake in a described network's layer; it needs crosscheck verify "
     "--spec FILE --inject conv2d-dw-flipped"),
    ("unknown-option", "--frobnicate", 2, "unrecognized arguments: --frobnicate"),
    ("unknown-command", "frob", 2, "unrecognized arguments: frob"),
    ("budget-text", "--max-memory 12X", 2,
     "argument --max-memory: got '12X', needs a size in bytes such as 512M, 12G or 800000"),
    ("budget-too-small", "--max-memory 1k", 2,
     "memory: the slides' network 8x8-k3-out1-N4-sum-float64-seed0 needs about 169 kB, more than the budget of 1 kB "
     "(--max-memory SIZE sets it)"),
    # where a report goes (--junit-xml, --markdown): checked before the run, nothing written
    ("junit-xml-a-folder", "--junit-xml {tmp}", 2, "--junit-xml: got '{tmp}', a directory, needs a file path"),
    ("junit-xml-in-a-missing-folder", "--junit-xml {tmp}/missing/junit.xml", 2,
     "--junit-xml: got '{tmp}/missing/junit.xml', needs a file in an existing folder; '{tmp}/missing' does not "
     "exist"),
    ("junit-xml-under-a-file", "--junit-xml {tmp}/bad.toml/junit.xml", 2,
     "--junit-xml: got '{tmp}/bad.toml/junit.xml', needs a file in an existing folder; '{tmp}/bad.toml' is not a "
     "folder"),
    # a named pipe of the test's own, never /dev/null: a mutant that skips this check would replace /dev/null
    ("junit-xml-not-a-regular-file", "--junit-xml {tmp}/pipe", 2,
     "--junit-xml: got '{tmp}/pipe', not a regular file, needs a file path (the report replaces it)"),
    ("junit-xml-empty", ["--junit-xml", ""], 2, "--junit-xml: got '', needs a file path"),
    ("markdown-a-folder", "--markdown {tmp}", 2, "--markdown: got '{tmp}', a directory, needs a file path"),
    ("markdown-in-a-missing-folder", "--markdown {tmp}/missing/summary.md", 2,
     "--markdown: got '{tmp}/missing/summary.md', needs a file in an existing folder; '{tmp}/missing' does not "
     "exist"),
    # a described network (crosscheck verify)
    ("verify-without-a-description", "verify", 2, "one of the arguments --spec --spec-json is required"),
    ("spec-missing", "verify --spec {tmp}/missing.toml", 2,
     "{tmp}/missing.toml: cannot read: No such file or directory"),
    ("spec-a-folder", "verify --spec {tmp}", 2, "{tmp}: got a directory, needs a .toml or .json description"),
    ("spec-not-toml", "verify --spec {tmp}/bad.toml", 2,
     "{tmp}/bad.toml: not valid TOML: Invalid value (at line 1, column 8)"),
    ("spec-binary", "verify --spec {tmp}/binary.toml", 2,
     "{tmp}/binary.toml: not valid TOML: 'utf-8' codec can't decode byte 0xff in position 3: invalid start byte"),
    ("spec-without-layers", "verify --spec {tmp}/nolayers.toml", 2,
     "{tmp}/nolayers.toml: description: missing required option 'layers'"),
    ("spec-nested-too-deeply", "verify --spec {tmp}/deep.json", 2,
     "{tmp}/deep.json: nested too deeply to read, needs a description of a few levels"),
    ("spec-json-broken", "verify --spec-json {", 2,
     "spec JSON: not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("spec-json-a-list", "verify --spec-json []", 2, "description: got list [], needs a table (a dict) of options"),
    ("spec-json-a-billion-channels", ["verify", "--spec-json", json.dumps(
        {"input_shape": [1, 4, 4], "layers": [{"type": "conv2d", "out_channels": 10**9, "kernel_size": 3},
                                              {"type": "flatten"}], "loss": {"type": "mse"}})], 2,
     "memory: network 'spec-json' with batch 2 needs about ..."),
    ("spec-json-a-huge-number", ["verify", "--spec-json", '{"input_shape": [1, 8, 8], "batch_size": 1e400, '
                                 '"layers": [{"type": "relu"}], "loss": {"type": "mse"}}'], 2,
     "batch_size: got inf, needs an integer >= 1"),
    ("two-descriptions", f"verify --spec {LENET} --spec-json {{}}", 2,
     "argument --spec-json: not allowed with argument --spec"),
    ("verify-inject-unknown", f"verify --spec {LENET} --inject nope", 2, f"--inject: got 'nope', {CATALOGUE_NAMES}..."),
    ("inject-layer-out-of-range", f"verify --spec {LENET} --inject conv2d-dw-flipped@99", 2,
     "--inject: got layer '99', needs a layer index in [0, 11]"),
    ("scaled-layer-out-of-range", f"verify --spec {LENET} --inject scaled@99", 2,
     "--inject: got layer '99', needs a layer index in [0, 11]"),
    ("inject-at-another-layer-type", f"verify --spec {LENET} --inject conv2d-dw-flipped@1", 2,
     "--inject: conv2d-dw-flipped changes a conv2d layer; layer 1 is a tanh"),
    ("inject-a-slides-mistake", f"verify --spec {LENET} --inject sgd-wrong-sign", 2,
     "--inject: got 'sgd-wrong-sign', a mistake in the slides' network; it needs crosscheck seed --inject "
     "sgd-wrong-sign"),
    ("verify-steps-zero", f"verify --spec {LENET} --steps 0", 2, "steps: got 0, needs an integer >= 1"),
    ("verify-seed-text", f"verify --spec {LENET} --seed x", 2, "argument --seed: invalid int value: 'x'"),
    ("verify-junit-xml-a-folder", f"verify --spec {LENET} --junit-xml {{tmp}}", 2,
     "--junit-xml: got '{tmp}', a directory, needs a file path"),
    ("verify-markdown-in-a-missing-folder", f"verify --spec {LENET} --markdown {{tmp}}/missing/summary.md", 2,
     "--markdown: got '{tmp}/missing/summary.md', needs a file in an existing folder; '{tmp}/missing' does not "
     "exist"),
    # diagnose and explain
    ("diagnose-nothing", "diagnose", 2, "one of the arguments --wrong --module --spec --list is required"),
    ("wrong-unknown", "diagnose --wrong nope", 2, f"--wrong: got 'nope', {CATALOGUE_NAMES}..."),
    ("wrong-and-module", "diagnose --wrong sgd-wrong-sign --module x.py", 2,
     "argument --module: not allowed with argument --wrong"),
    ("wrong-and-list", "diagnose --wrong sgd-wrong-sign --list", 2,
     "argument --list: not allowed with argument --wrong"),
    ("diagnose-junit-xml-a-folder", "diagnose --wrong sgd-wrong-sign --junit-xml {tmp}", 2,
     "--junit-xml: got '{tmp}', a directory, needs a file path"),
    ("diagnose-markdown-a-folder", "diagnose --wrong sgd-wrong-sign --markdown {tmp}", 2,
     "--markdown: got '{tmp}', a directory, needs a file path"),
    ("list-with-junit-xml", "diagnose --list --junit-xml {tmp}/junit.xml", 2,
     "--junit-xml: given with --list, needs --wrong or --module (a list is no check)"),
    ("list-with-markdown", "diagnose --list --markdown -", 2,
     "--markdown: given with --list, needs --wrong or --module (a list is no check)"),
    ("top-negative", "diagnose --wrong sgd-wrong-sign --top -1", 2, "top: got -1, needs an integer >= 0"),
    ("diagnose-dtype-float16", "diagnose --wrong sgd-wrong-sign --dtype float16", 2,
     "argument --dtype: invalid choice: 'float16' (choose from 'float32', 'float64')"),
    ("diagnose-seed-negative", "diagnose --wrong sgd-wrong-sign --seed -2", 2, "seed: got -2, needs an integer >= 0"),
    ("diagnose-plot-pdf", "diagnose --wrong sgd-wrong-sign --plot {tmp}/d.pdf", 2,
     "--plot: got '{tmp}/d.pdf', needs a file name ending in .png or .svg"),
    ("diagnose-plot-no-suffix", "diagnose --wrong sgd-wrong-sign --plot {tmp}/d", 2,
     "--plot: got '{tmp}/d', needs a file name ending in .png or .svg"),
    ("diagnose-plot-a-folder", "diagnose --wrong sgd-wrong-sign --plot {tmp}/folder.png", 2,
     "--plot: got '{tmp}/folder.png', a folder, needs a file name ending in .png or .svg"),
    ("diagnose-plot-under-a-file", "diagnose --wrong sgd-wrong-sign --plot {tmp}/bad.toml/sub/d.png", 2,
     "--plot: got '{tmp}/bad.toml/sub/d.png', needs a folder where the file {tmp}/bad.toml stands"),
    ("diagnose-plot-with-list", "diagnose --list --plot {tmp}/d.png", 2,
     "argument --plot: not allowed with argument --list (it diagnoses nothing)"),
    ("module-missing", "diagnose --module {tmp}/missing.py", 2,
     "--module: got '{tmp}/missing.py', needs an existing .py file"),
    ("module-not-python", "diagnose --module {tmp}/bad.toml", 2,
     "--module: got '{tmp}/bad.toml', needs an existing .py file"),
    ("explain-kernel-too-big", "explain --shape 3 --k 5", 2, "kernel_shape: got 5x5, needs at most the input's 3x3"),
    ("explain-lr-zero", "explain --lr 0", 2, "lr: got 0.0, needs a finite number > 0"),
    ("explain-inject-unknown", "explain --inject nope", 2, f"--inject: got 'nope', {CATALOGUE_NAMES}..."),
    ("explain-budget", "explain --max-memory 1k", 2,
     "memory: the slides' network 4x4-k2-out1-N1-sum-float64-seed0 needs about ..."),
    # a saved run (crosscheck plot)
    ("plot-without-a-run", "plot --out {tmp}/plots", 2, "the following arguments are required: RUN.npz"),
    ("plot-without-out", "plot {tmp}/run.npz", 2, "the following arguments are required: --out"),
    ("plot-format-pdf", "plot {tmp}/run.npz --out {tmp}/plots --format pdf", 2,
     "argument --format: invalid choice: 'pdf' (choose from 'png', 'svg', 'both')"),
    ("plot-run-missing", "plot {tmp}/missing.npz --out {tmp}/plots", 2,
     "{tmp}/missing.npz: cannot read: No such file or directory"),
    ("plot-run-a-folder", "plot {tmp} --out {tmp}/plots", 2, "{tmp}: got a directory, needs a saved run (.npz)"),
    ("plot-run-text", "plot {tmp}/bad.toml --out {tmp}/plots", 2, "{tmp}/bad.toml: not a saved run: not an .npz "
     "archive"),
    ("plot-run-empty", "plot {tmp}/empty.npz --out {tmp}/plots", 2, "{tmp}/empty.npz: not a saved run: not an .npz "
     "archive"),
    ("plot-run-truncated", "plot {tmp}/truncated.npz --out {tmp}/plots", 2, "{tmp}/truncated.npz: not a saved run: "
     "not an .npz archive"),
    ("plot-run-one-array", "plot {tmp}/array.npy --out {tmp}/plots", 2, "{tmp}/array.npy: not a saved run: one .npy "
     "array, needs an .npz archive of the run's arrays"),
    ("plot-run-objects", "plot {tmp}/objects.npz --out {tmp}/plots", 2, "{tmp}/objects.npz: not a saved run: it "
     "holds object arrays (pickled Python objects), needs arrays of numbers and text"),
    ("plot-run-a-key-missing", "plot {tmp}/partial.npz --out {tmp}/plots", 2, "{tmp}/partial.npz: missing rtol; needs "
     "exactly the keys of crosscheck.runfile.RUN_KEYS"),
    ("plot-run-tolerance-zero", "plot {tmp}/zero-rtol.npz --out {tmp}/plots", 2, "{tmp}/zero-rtol.npz: rtol: got "
     "0.0, needs a finite number > 0"),
    ("plot-out-a-file", "plot {tmp}/run.npz --out {tmp}/bad.toml", 2,
     "{tmp}/bad.toml: got a file, needs a folder for the plots"),
    ("plot-out-under-a-file", "plot {tmp}/run.npz --out {tmp}/bad.toml/plots", 2,
     "{tmp}/bad.toml/plots/training.png: cannot write: a file stands in the way of its folder {tmp}/bad.toml/plots"),
    # users' modules (crosscheck diagnose --module): what they define, checked before any of it runs
    ("module-syntax", "diagnose --module {tmp}/syntax.py", 2,
     "{tmp}/syntax.py: importing it raised SyntaxError: invalid syntax (syntax.py, line 1)"),
    ("module-raises-on-import", "diagnose --module {tmp}/import_raises.py", 2,
     "{tmp}/import_raises.py: importing it raised RuntimeError: boom at import"),
    ("module-exits-on-import", "diagnose --module {tmp}/import_exits.py", 2,
     "{tmp}/import_exits.py: importing it raised SystemExit: 5"),
    ("module-overrides-nothing", "diagnose --module {tmp}/nothing.py", 2,
     "{tmp}/nothing.py: overrides nothing, needs LAYER_BACKWARD or another override (crosscheck diagnose --help, "
     "docs/debugging.md)"),
    ("module-empty", "diagnose --module {tmp}/empty.py", 2, "{tmp}/empty.py: overrides nothing, ..."),
    ("module-a-description-only", "diagnose --module {tmp}/spec_only.py", 2,
     "{tmp}/spec_only.py: overrides nothing, ..."),
    ("module-table-a-list", "diagnose --module {tmp}/table_list.py", 2,
     "{tmp}/table_list.py: LAYER_BACKWARD is a list, needs a dict of callables"),
    ("module-unknown-equation", "diagnose --module {tmp}/unknown_equation.py", 2,
     "{tmp}/unknown_equation.py: LAYER_BACKWARD has the key 'dO_dZZ', needs keys among 'dE_dO', 'dO_dZ2', 'dE_dZ2', "
     "'dZ2_dW', 'dE_dW', 'dE_db', 'dZ2_dH1', 'dE_dH1', 'dH1_dZ1', 'dE_dZ1', 'dZ1_df', 'dE_df'"),
    ("module-not-callable", "diagnose --module {tmp}/not_callable.py", 2,
     "{tmp}/not_callable.py: LAYER_BACKWARD['dO_dZ2'] is a int, needs a function"),
    ("module-equation-signature", "diagnose --module {tmp}/equation_signature.py", 2,
     "{tmp}/equation_signature.py: LAYER_BACKWARD['dO_dZ2'] is dO_dZ2() ({tmp}/equation_signature.py:1), needs to "
     "take (O) as manual.seed_network.dO_dZ2 does"),
    ("module-sgd-not-callable", "diagnose --module {tmp}/sgd_int.py", 2,
     "{tmp}/sgd_int.py: SGD_STEP is a int, needs a function"),
    ("module-sgd-signature", "diagnose --module {tmp}/sgd_signature.py", 2,
     "{tmp}/sgd_signature.py: SGD_STEP is step(params, grads) ({tmp}/sgd_signature.py:1), needs to take (params, "
     "grads, lr) as manual.seed_network.sgd_step does"),
    ("module-case-a-list", "diagnose --module {tmp}/case_list.py", 2,
     "{tmp}/case_list.py: CASE is a list, needs a dict of SeedCase fields"),
    ("module-case-unknown-field", "diagnose --module {tmp}/case_field.py", 2,
     "{tmp}/case_field.py: CASE: SeedCase.__init__() got an unexpected keyword argument 'shape'"),
    ("module-case-batch-zero", "diagnose --module {tmp}/case_batch.py", 2, "batch: got 0, needs an integer >= 1"),
    ("module-spec-missing", "diagnose --module {tmp}/spec_missing.py", 2,
     "{tmp}/missing.toml: cannot read: No such file or directory"),
    ("module-spec-without-layers", "diagnose --module {tmp}/spec_no_layers.py", 2,
     "description: missing required option 'layers'"),
    ("module-layer-key", "diagnose --module {tmp}/layer_key.py", 2,
     "{tmp}/layer_key.py: LAYER_BACKWARD has the key 99, needs keys among 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'loss'"),
    ("module-backward-signature", "diagnose --module {tmp}/layer_signature.py", 2,
     "{tmp}/layer_signature.py: LAYER_BACKWARD[6] is bw(dout) ({tmp}/layer_signature.py:2), needs to take "
     "(dout, cache)"),
    ("module-forward-signature", "diagnose --module {tmp}/forward_signature.py", 2,
     "{tmp}/forward_signature.py: LAYER_FORWARD[6] is fw(x) ({tmp}/forward_signature.py:2), needs to take "
     "(x, params, options)"),
    ("module-optimizer-signature", "diagnose --module {tmp}/optimizer_signature.py", 2,
     "{tmp}/optimizer_signature.py: OPTIMIZER_STEP is step(params, grads, state, lr) "
     "({tmp}/optimizer_signature.py:2), needs to take (params, grads, state, **settings) as manual.optim.sgd_step "
     "does"),
    ("module-inputs-signature", "diagnose --module {tmp}/inputs_signature.py", 2,
     "{tmp}/inputs_signature.py: INPUTS is draw(spec) ({tmp}/inputs_signature.py:2), needs to take (spec, dtype, "
     "seed)"),
    # crosscheck train: the digits, by hand and by torch
    ("train-n-out-with-spec", "train --spec {digits_lenet} --n-out 10", 2,
     "--n-out: got 10 with a description, needs the slides' network (a description sets its own layers)"),
    ("train-k-with-spec", "train --spec {digits_lenet} --k 2", 2,
     "--k: got (2, 2) with a description, needs the slides' network (a description sets its own layers)"),
    ("train-n-out-5", "train --n-out 5", 2, "argument --n-out: invalid choice: 5 (choose from 1, 10)"),
    ("train-epochs-zero", "train --epochs 0", 2, "epochs: got 0, needs an integer >= 1"),
    ("train-batch-zero", "train --batch 0", 2, "batch: got 0, needs an integer >= 1"),
    ("train-batch-too-big", "train --batch 2000", 2, "batch: got 2000, needs at most the 1438 training images"),
    ("train-steps-zero", "train --steps 0", 2, "steps: got 0, needs an integer >= 1"),
    ("train-seed-negative", "train --seed -1", 2, "seed: got -1, needs an integer >= 0"),
    ("train-lr-negative", "train --lr -1", 2, "lr: got -1.0, needs a finite number > 0"),
    ("train-lr-nan-spec", "train --spec {digits_lenet} --lr nan", 2, "lr: got nan, needs a finite number > 0"),
    ("train-kernel-too-big", "train --k 9", 2, "kernel_shape: got 9x9, needs at most the input's 8x8"),
    ("train-inject-layer-mistake", "train --inject conv2d-dw-flipped", 2,
     "--inject: got 'conv2d-dw-flipped', a mistake in a described network's layer; it needs crosscheck verify "
     "--spec FILE --inject conv2d-dw-flipped"),
    ("train-inject-unknown", "train --inject nope", 2, "--inject: got 'nope', needs one of scaled-dE_dW, ..."),
    ("train-spec-3-channels", "train --spec {lenet}", 2,
     "input_shape: got [1, 28, 28], needs [1, 8, 8] (the digits are 8x8 grey images, one channel)"),
    ("train-spec-missing", "train --spec {tmp}/missing.toml", 2,
     "{tmp}/missing.toml: cannot read: No such file or directory"),
    ("train-spec-wrong-output", ["train", "--spec-json", '{"input_shape": [1, 8, 8], "layers": [{"type": "flatten"}, '
                                 '{"type": "linear", "out_features": 3}], "loss": {"type": "mse"}}'], 2,
     "the last layer's output: got [3] for mse, needs 10 (the ten digits, one-hot) or 1 (odd or even)"),
    ("train-spec-huge", ["train", "--spec-json", '{"input_shape": [1, 8, 8], "layers": [{"type": "conv2d", '
                         '"out_channels": 1000000000, "kernel_size": 3}, {"type": "flatten"}, {"type": "linear", '
                         '"out_features": 10}], "loss": {"type": "softmax_cross_entropy"}}', "--max-memory", "1G"], 2,
     "memory: network 'spec-json' with batch 2 needs about ..."),
    # the code under test raised (exit 3), named by function, file and line
    ("equation-raises", "diagnose --module {tmp}/equation_raises.py", 3,
     "the code under test raised ValueError: mine (in dO_dZ2, {tmp}/equation_raises.py:2)" + RAISED),
    ("backward-raises", "diagnose --module {tmp}/backward_raises.py", 3,
     "the code under test raised ZeroDivisionError: x (in bw, {tmp}/backward_raises.py:3)" + RAISED),
    ("backward-calls-exit", "diagnose --module {tmp}/backward_exits.py", 3,
     "the code under test raised SystemExit: 7 (in bw, {tmp}/backward_exits.py:4)" + RAISED),
    ("backward-recurses", "diagnose --module {tmp}/backward_recurses.py", 3,
     "the code under test raised RecursionError: maximum recursion depth exceeded (in bw, "
     "{tmp}/backward_recurses.py:3)" + RAISED),
    ("backward-out-of-memory", "diagnose --module {tmp}/backward_memory.py", 3,
     "the code under test raised MemoryError (in bw, {tmp}/backward_memory.py:3)" + RAISED),
    ("forward-raises", "diagnose --module {tmp}/forward_raises.py", 3,
     "the code under test raised KeyError: 'w' (in fw, {tmp}/forward_raises.py:3)" + RAISED),
    ("inputs-raise", "diagnose --module {tmp}/inputs_raise.py", 3,
     "the code under test raised OSError: no data (in draw, {tmp}/inputs_raise.py:3)" + RAISED),
    ("builtin-without-a-signature", "diagnose --module {tmp}/builtin.py", 3,
     "the code under test raised ValueError: The truth value of an array with more than one element is ambiguous. "
     "Use a.any() or a.all() (in ..."),  # the slides' backward: the builtin has no frame
    ("step-raises", "diagnose --module {tmp}/step_raises.py", 3,
     "the code under test raised ArithmeticError: lr (in step, {tmp}/step_raises.py:2)" + RAISED),
]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    for name, text in MODULES.items():
        (folder / name).write_text(text.replace("{small3!r}", repr(SMALL3)))
    for name, content in FILES.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (folder / "folder.png").mkdir()
    os.mkfifo(folder / "pipe")
    return str(folder)


def _argv(argv, tmp):
    places = {"{tmp}": tmp, "{lenet}": LENET, "{digits_lenet}": str(ROOT / "examples" / "digits-lenet.toml")}
    return [_placed(a, places) for a in (argv.split(" ") if isinstance(argv, str) else argv)]


def _placed(text, places):
    for key, value in places.items():
        text = text.replace(key, value)
    return text


def _expected(message, tmp):
    message = message.replace("{tmp}", tmp)
    if message.endswith("..."):
        return re.escape(f"crosscheck: error: {message[:-3]}") + r".*\n"
    return re.escape(f"crosscheck: error: {message}\n")


def test_the_table_is_large_and_covers_every_command():
    assert len(CLI) >= 60 and len({case[0] for case in CLI}) == len(CLI)
    commands = {_argv(argv, "")[0] if _argv(argv, "")[0] in cli.COMMANDS else "seed" for _, argv, _, _ in CLI}
    assert commands == set(cli.COMMANDS)
    assert {code for *_, code, _ in CLI} == {2, 3}


@pytest.mark.parametrize(("argv", "code", "message"), [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_one_line_and_the_exit_code(argv, code, message, tmp, capsys):
    assert cli.main(_argv(argv, tmp)) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(_expected(message, tmp), captured.err, flags=re.S), captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


JSON = [c for c in CLI[::4] if not str(c[1]).startswith("explain")]  # explain prints a derivation: no --json


@pytest.mark.parametrize(("argv", "code", "message"), [c[1:] for c in JSON], ids=[c[0] for c in JSON])
def test_with_json_the_line_is_a_json_document(argv, code, message, tmp, capsys):
    assert cli.main([*_argv(argv, tmp), "--json"]) == code
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert captured.err == "" and document["exit"] == code
    assert re.fullmatch(_expected(message, tmp), f"crosscheck: error: {document['error']}\n", flags=re.S)


def test_nothing_was_allocated_past_the_budget():
    """The whole table ran in this process (39 TB and 10^9-channel sizes among it): its peak memory stayed that of
    a test process, far below what any refused size would have taken had it been drawn."""
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak_bytes < 4e9


# --- what a module returns wrongly is a finding on its rows (exit 1), never a crash -----------------------------

WRONG_RETURNS = [
    ("seed-none", "def dO_dZ2(O):\n    return None\nLAYER_BACKWARD = {'dO_dZ2': dO_dZ2}\n",
     "dO/dZ2", "manual side failed: dO_dZ2 returned None, needs an array of numbers"),
    ("seed-text", "def dE_dO(O, Y, n):\n    return 'O - Y'\nLAYER_BACKWARD = {'dE_dO': dE_dO}\n",
     "dE/dO", "manual side failed: dE_dO returned 'O - Y', needs an array of numbers"),
    ("seed-ragged", "def dO_dZ2(O):\n    return [[1.0], [1.0, 2.0]]\nLAYER_BACKWARD = {'dO_dZ2': dO_dZ2}\n",
     "dO/dZ2", "manual side failed: dO_dZ2 returned [[1.0], [1.0, 2.0]], needs an array of numbers"),
    ("seed-transposed-factor", "def dZ2_dH1(W):\n    return W\nLAYER_BACKWARD = {'dZ2_dH1': dZ2_dH1}\n"
     "CASE = {'n_out': 2}\n", "dZ2/dH1", "shape mismatch: manual (36, 2), autograd (2, 36); manual equals autograd "
     "transposed"),
    ("seed-transposed-gradient", "import numpy as np\ndef dE_dW(dE_dZ2, dZ2_dW):\n"
     "    return np.dot(dZ2_dW.T, dE_dZ2).T\nLAYER_BACKWARD = {'dE_dW': dE_dW}\n", "dE/dW",
     "shape mismatch: manual (1, 36), autograd (36, 1); manual equals autograd transposed"),
    ("network-none", "SPEC = {small3!r}\ndef bw(dout, cache):\n    return None\nLAYER_BACKWARD = {6: bw}\n",
     "6 tanh: dE/dinput",
     "manual side failed: layer 6 (tanh)'s backward returned NoneType, needs a tuple of gradients"),
    ("network-text", "SPEC = {small3!r}\ndef bw(dout, cache):\n    return ('a',)\nLAYER_BACKWARD = {6: bw}\n",
     "6 tanh: dE/dinput", "manual side failed: layer 6 (tanh)'s backward returned 'a', needs an array of numbers"),
    ("network-wrong-shape", "SPEC = {small3!r}\ndef bw(dout, cache):\n    return (dout[:1],)\n"
     "LAYER_BACKWARD = {6: bw}\n", "6 tanh: dE/dinput", "shape mismatch: manual (1, 5, 4, 3), autograd (3, 5, 4, 3)"),
]


@pytest.mark.parametrize(("text", "quantity", "problem"), [c[1:] for c in WRONG_RETURNS],
                         ids=[c[0] for c in WRONG_RETURNS])
def test_a_wrong_return_is_a_finding(text, quantity, problem, tmp_path, capsys):
    module = tmp_path / "mine.py"
    module.write_text(text.replace("{small3!r}", repr(SMALL3)))
    assert cli.main(["diagnose", "--module", str(module), "--json"]) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert captured.err == "" and document["quantity"] == quantity
    assert document["comparison"]["problem"] == problem


# --- the API: InputError with the whole message, or the documented finding --------------------------------------

def _params(dtype=np.float64):
    return {"f": np.zeros((2, 2), dtype), "W": np.zeros((9, 1), dtype), "b": np.zeros(1, dtype)}


def _grads(**changed):
    return {f"dE_d{k}": v for k, v in (_params() | changed).items()}


def _layer(**changed):
    arguments = {"forward": F.relu_forward, "backward": F.relu_backward, "torch_fn": __import__("torch").relu,
                 "shapes": [(2, 3)]} | changed
    return lambda: check_layer(**arguments)


API = [
    ("sgd-nan-gradient", lambda: seed_network.sgd_step(_params(), _grads(W=np.full((9, 1), np.nan)), 0.1),
     "dE_dW: got non-finite value nan at index (0, 0), needs finite values"),
    ("sgd-int-gradient", lambda: seed_network.sgd_step(_params(), _grads(b=np.zeros(1, int)), 0.1),
     "dE_db: got dtype int64, needs float32 or float64"),
    ("sgd-float64-gradient-for-float32", lambda: seed_network.sgd_step(
        _params(np.float32), {k: v.astype(np.float32) if k != "dE_df" else v for k, v in _grads().items()}, 0.1),
     "dE_df: got dtype float64, needs float32, the dtype of f"),
    ("sgd-list-gradient", lambda: seed_network.sgd_step(_params(), _grads(f=[[0.0, 0.0], [0.0, 0.0]]), 0.1),
     "dE_df: got list, needs a NumPy array"),
    ("sgd-transposed-gradient", lambda: seed_network.sgd_step(_params(), _grads(W=np.zeros((1, 9))), 0.1),
     "dE_dW: got shape (1, 9), needs (9, 1) (the shape of W)"),
    ("optim-nan-gradient", lambda: optim.SGD(0.1).step({"w": np.zeros(2)}, {"w": np.array([0.0, np.inf])}),
     "grads['w']: got non-finite value inf at index (1,), needs finite values"),
    ("optim-int-gradient", lambda: optim.SGD(0.1).step({"w": np.zeros(2)}, {"w": np.zeros(2, int)}),
     "grads['w']: got dtype int64, needs float32 or float64"),
    ("optim-lr-negative", lambda: optim.SGD(-1.0), "lr: got -1.0, needs a finite number > 0"),
    ("sigmoid-a-list", lambda: F.sigmoid_forward([0.0]), "z: got list, needs a NumPy array"),
    ("sigmoid-ints", lambda: F.sigmoid_forward(np.arange(3)), "z: got dtype int64, needs float32 or float64"),
    ("sigmoid-dout-shape", lambda: F.sigmoid_backward(np.zeros(3), F.sigmoid_forward(np.zeros(2))[1]),
     "dout: got shape (3,) dtype float64, needs an array of shape (2,) and dtype float64 (the forward output's)"),
    ("flatten-a-scalar", lambda: F.flatten_forward(np.float64(1.0)), "x: got float64, needs a NumPy array"),
    ("flatten-0d", lambda: F.flatten_forward(np.array(1.0)),
     "x: got 0-D array of shape (), needs at least 2-D (N, ...), as torch.flatten(x, 1)"),
    # torch.flatten(torch.zeros(3), 1): "Dimension out of range"; (3,) -> (3, 1) was manual's answer before
    ("flatten-1d", lambda: F.flatten_forward(np.zeros(3)),
     "x: got 1-D array of shape (3,), needs at least 2-D (N, ...), as torch.flatten(x, 1)"),
    ("flatten-dout-shape", lambda: F.flatten_backward(np.zeros((2, 6)), F.flatten_forward(np.zeros((2, 3, 3)))[1]),
     "dout: got shape (2, 6) dtype float64, needs an array of shape (2, 9) and dtype float64 (the forward output's)"),
    ("layer-shapes-negative", _layer(shapes=[(2, -3)]),
     "shapes: got [(2, -3)], needs a non-empty list of shapes, one tuple of ints >= 0 per forward input, "
     "e.g. [(4, 5), (5,)]"),
    ("layer-seeds-empty", _layer(seeds=()),
     "seeds: got (), needs a non-empty sequence of integer seeds >= 0, e.g. (0, 1, 2)"),
    ("layer-dtype-float16", _layer(dtypes=("float16",)),
     "dtypes: got 'float16', needs float64 or float32 (the dtypes of the tolerance table)"),
    ("layer-names-too-many", _layer(names=["x", "y"]),
     "names: got ['x', 'y'], needs None or 1 distinct non-empty strings, one per input"),
    ("layer-tolerance-negative", _layer(tolerance=Tolerance(-1.0, 0.0, "")),
     "tolerance: got Tolerance(rtol=-1.0, atol=0.0, why=''), needs None (the table) or Tolerance(rtol, atol, why) "
     "with finite rtol, atol >= 0"),
    ("layer-tolerance-loose-without-reason", _layer(tolerance=Tolerance(1e-3, 0.0, "")),
     "tolerance: rtol 0.001, atol 0 is looser than the float64 table (rtol 1e-10, atol 1e-12), needs why=, the "
     "reason it may be"),
    ("layer-dtype-policy", _layer(dtype_policy="loose"),
     "dtype_policy: got 'loose', needs one of 'strict', 'values'"),
    ("layer-gradcheck-text", _layer(gradcheck="yes"), "gradcheck: got 'yes', needs True or False"),
    ("layer-torch-fn-missing", _layer(torch_fn=None),
     "torch_fn: got None, needs the same forward in torch, (*tensors) -> tensor"),
    # saved runs and pictures
    ("run-of-nothing", lambda: runfile.check_run({}),
     "arrays: missing atol, confusion_autograd, confusion_manual, epoch_steps, filter_grad_autograd, "
     "filter_grad_manual, filters_autograd, filters_manual, loss_autograd, loss_manual, max_rel_diff, rtol, summary, "
     "test_accuracy_autograd, test_accuracy_manual, train_accuracy_autograd, train_accuracy_manual; needs exactly "
     "the keys of crosscheck.runfile.RUN_KEYS"),
    ("run-an-unknown-key", lambda: runfile.check_run(synthetic_run() | {3: np.zeros(1)}),
     "arrays: unknown 3; needs exactly the keys of crosscheck.runfile.RUN_KEYS"),
    ("run-file-missing", lambda: runfile.load_run(f"{NOWHERE}/run.npz"),
     f"{NOWHERE}/run.npz: cannot read: No such file or directory"),
    ("run-saved-without-npz", lambda: runfile.save_run("run.zip", synthetic_run()),
     "path: got 'run.zip', needs a file name ending in .npz"),
    ("plots-format-pdf", lambda: plots.save_plots(synthetic_run(), NOWHERE, "pdf"),
     "formats: got 'pdf', needs one or both of 'png', 'svg'"),
    ("picture-pdf", lambda: plots.save_figure(None, "figure.pdf"),
     "path: got 'figure.pdf', needs a file name ending in .png or .svg"),
]


@pytest.mark.parametrize(("call", "message"), [c[1:] for c in API], ids=[c[0] for c in API])
def test_the_api_raises_input_error_with_the_whole_message(call, message):
    with pytest.raises(InputError) as info:
        call()
    assert str(info.value) == message


# --- a real process: Ctrl-C and a reader that goes away ---------------------------------------------------------

def _started(command):
    return subprocess.Popen([sys.executable, "-m", "crosscheck", *command], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})


def test_ctrl_c_in_a_real_run_exits_130_with_one_line():
    with _started(["--steps", "100000", "--shape", "16"]) as process:  # a run of minutes, interrupted in seconds
        try:
            deadline = time.monotonic() + 300
            while "libtorch_cpu" not in pathlib.Path(f"/proc/{process.pid}/maps").read_text():  # the run began
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
            time.sleep(1.0)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=300)
        finally:
            process.kill()
    assert (process.returncode, out, err) == (130, "", "crosscheck: error: interrupted\n")


def test_a_reader_that_goes_away_is_not_an_error():
    process = _started(["diagnose", "--list"])
    process.stdout.close()  # like `crosscheck diagnose --list | head -0`: the first write meets a closed pipe
    with process.stderr:
        err = process.stderr.read()
    assert (process.wait(timeout=120), err) == (0, "")
