"""``crosscheck``: hand-derived NumPy backprop against PyTorch autograd, from the command line.

    crosscheck [seed] [options]      the slides' network (the default command)
    crosscheck verify --spec FILE    a network described in TOML or JSON
    crosscheck explain               the slides' derivation, equation by equation, on a tiny example
    crosscheck diagnose              the first wrong quantity of a wrong derivation, localized and classified
    crosscheck plot RUN --out DIR    the pictures of a saved training run (matplotlib)

Exit codes: 0 all quantities agree, 1 a mismatch, 2 bad input or a bad description, 3 the code under test raised
(one line naming the function, file and line; --traceback prints the traceback), 4 crosscheck itself failed, 130
interrupted (Ctrl-C). Every error is one line on stderr; with --json, a JSON document {"error", "exit"} on stdout.

seed, verify and diagnose also write their result for CI (crosscheck.reports): --junit-xml PATH, one test case per
quantity, and --markdown PATH, a summary appended to PATH ($GITHUB_STEP_SUMMARY). Both paths are checked before the
run; an exit 3 or 4 is written there too (one test case with an <error>), bad input and Ctrl-C write nothing.
"""

import argparse
import json
import os
import signal
import sys
import traceback
import warnings

from crosscheck.reports import Outputs, case_id, installed_version
from netdesc.checks import InputError, check_positive_int

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_RAISED, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
COMMANDS = ("seed", "verify", "explain", "diagnose", "train", "plot")
DTYPE_CHOICES = ("float32", "float64")
EXIT_CODES = ("Exit codes: 0 all agree, 1 a mismatch, 2 bad input, 3 the code under test raised (--traceback shows "
              "it), 4 crosscheck itself failed, 130 interrupted.")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block: the exit-2 contract
        raise InputError(message)


def _shape(text):
    """'8x6' -> (8, 6); '5' -> (5, 5)."""
    parts = text.lower().split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}, needs HxW or a single size such as 8x6 or 5") from None
    if len(shape) == 1:
        shape *= 2
    if len(shape) != 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}, needs two positive sizes such as 8x6 or one such as 5")
    return shape


def _memory(text):
    """'12G', '512M', '800k' or a number of bytes -> bytes."""
    scale = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        value = 0
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"got {text!r}, needs a size in bytes such as 512M, 12G or 800000")
    return int(value)


def _version():
    return installed_version("backprop-crosscheck")


def _ci_options(parser):
    """--junit-xml and --markdown (crosscheck.reports), for a command that reports a check."""
    parser.add_argument("--junit-xml", metavar="PATH", help="also write the result to PATH as JUnit XML, one test "
                        "case per quantity, for CI (docs/ci.md)")
    parser.add_argument("--markdown", metavar="PATH", help="also append a Markdown summary to PATH, e.g. "
                        "\"$GITHUB_STEP_SUMMARY\"; - prints it in place of the table")


def build_parser():
    p = _Parser(prog="crosscheck", description="Prove a hand-derived backpropagation right or wrong against "
                "PyTorch autograd. Without a command: crosscheck seed.", epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=f"crosscheck {_version()}")
    p.add_argument("--traceback", action="store_true", help="with any command: print the traceback of an exception "
                   "the code under test (or crosscheck) raised, above its one-line error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("seed", help="the slides' CNN, by hand and by autograd, quantity by quantity (the default)",
                       description="Check the hand-derived backprop of the slides' CNN against PyTorch autograd.",
                       epilog=EXIT_CODES + " Any other network: crosscheck verify --spec FILE.")
    s.add_argument("--shape", type=_shape, default=(8, 8), metavar="HxW", help="input image size (default 8x8)")
    s.add_argument("--k", type=_shape, default=(3, 3), metavar="K|KHxKW", help="filter size (default 3)")
    s.add_argument("--n-out", type=int, default=1, help="outputs of the linear layer (default 1)")
    s.add_argument("--batch", "-N", type=int, default=4, help="samples in the batch (default 4)")
    s.add_argument("--seed", type=int, default=0, help="random seed of inputs and parameters (default 0)")
    s.add_argument("--dtype", choices=DTYPE_CHOICES, default="float64", help="default float64")
    s.add_argument("--reduction", choices=("sum", "mean"), default="sum", help="over the batch (default sum)")
    s.add_argument("--lr", type=float, default=0.5, help="SGD learning rate alpha (default 0.5)")
    s.add_argument("--steps", type=int, default=50, help="training steps to compare (default 50)")
    s.add_argument("--inject", metavar="NAME", help="swap in a catalogued wrong derivation of the slides' network "
                   "to see a mismatch reported (crosscheck diagnose --list names them)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")

    v = sub.add_parser("verify", help="a network described in TOML or JSON",
                       description="Check the hand-derived backprop of a network described in TOML or JSON against "
                       "PyTorch autograd: every layer's output, the loss, every layer's input gradient, every "
                       "parameter gradient, the parameters after the first SGD steps and after the description's "
                       "steps.", epilog=EXIT_CODES)
    source = v.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", metavar="FILE", help="the description, a .toml or .json file (see examples/)")
    source.add_argument("--spec-json", metavar="TEXT", help="the description as JSON text")
    v.add_argument("--seed", type=int, default=0, help="random seed of inputs, targets and parameters (default 0)")
    v.add_argument("--dtype", choices=DTYPE_CHOICES, default="float64", help="default float64")
    v.add_argument("--steps", type=int, help="SGD steps to compare (default: the description's optimizer.steps)")
    v.add_argument("--inject", metavar="NAME[@LAYER]", help="swap in a catalogued wrong derivation, on the first "
                   "layer of its type or on LAYER; a layer index alone scales that layer's backward by "
                   "1 + 100 * rtol")
    v.add_argument("--json", action="store_true", help="print the result as JSON")

    e = sub.add_parser("explain", help="the slides' derivation, equation by equation, on a tiny example",
                       description="Walk the slides' derivation equation by equation on one small example: each "
                       "chain-rule factor, its value by hand and by autograd, agree or not; then the SGD updates "
                       "of W, b and f.", epilog=EXIT_CODES)
    e.add_argument("--shape", type=_shape, default=(4, 4), metavar="HxW", help="input image size (default 4x4)")
    e.add_argument("--k", type=_shape, default=(2, 2), metavar="K|KHxKW", help="filter size (default 2)")
    e.add_argument("--seed", type=int, default=0, help="random seed of input and parameters (default 0)")
    e.add_argument("--dtype", choices=DTYPE_CHOICES, default="float64", help="default float64")
    e.add_argument("--lr", type=float, default=0.5, help="SGD learning rate alpha (default 0.5)")
    e.add_argument("--inject", metavar="NAME", help="swap in a wrong derivation to see where the chain breaks")
    e.add_argument("--layer", choices=("slides", "batchnorm", "lstm"), default="slides",
                   help="slides: the slides' network (default); batchnorm: batch norm's training-mode derivation, "
                   "its forward and dE/dx as the sum of its three paths (direct, through mu, through var), on a "
                   "random 4x3 batch; lstm: one LSTM step, its gates, cell and hidden state and their backward, "
                   "with the cell state's gradient from the future, on a random sequence of 3 steps "
                   "(--shape, --k and --lr are the slides')")

    d = sub.add_parser("diagnose", help="localize and classify the first wrong quantity",
                       description="Find the first quantity where the manual side leaves autograd (forward, then "
                       "backward from the loss to the first layer, then the SGD updates), classify the mistake, show "
                       "the worst elements with the finite differences' value, and say which side finite "
                       "differences support.",
                       epilog="A module (--module) is Python and runs as such (trusted files only); its convention "
                       "is in crosscheck/check.py: LAYER_BACKWARD = {equation: fn} for the slides' network (names of "
                       "manual.seed_network.EQUATIONS, e.g. dO_dZ2; optional SGD_STEP, CASE), or SPEC and "
                       "LAYER_BACKWARD = {layer index or 'loss': fn} for a "
                       "described network (optional LAYER_FORWARD, OPTIMIZER_STEP, INPUTS). Exit codes: 0 nothing "
                       "wrong, 1 a mismatch diagnosed, 2 bad input.")
    source = d.add_mutually_exclusive_group(required=True)
    source.add_argument("--wrong", metavar="NAME", help="a catalogued wrong derivation (see --list)")
    source.add_argument("--module", metavar="FILE", help="a Python file of backward overrides")
    source.add_argument("--spec", metavar="FILE", help="a network description (TOML or JSON), with --inject")
    source.add_argument("--list", action="store_true", help="list the catalogue of wrong derivations")
    d.add_argument("--dtype", choices=DTYPE_CHOICES, help="default float64")
    d.add_argument("--seed", type=int, help="random seed of inputs and parameters (default: the case's)")
    d.add_argument("--inject", metavar="NAME[@LAYER]", help="with --spec: swap in a catalogued wrong derivation, on "
                   "the first layer of its type or on LAYER; a layer index alone (or scaled@LAYER) scales that "
                   "layer's backward")
    d.add_argument("--top", type=int, default=5, help="worst elements shown (default 5)")
    d.add_argument("--plot", metavar="FILE", help="also draw the first wrong quantity as heat maps (manual, "
                   "autograd, their difference) into FILE, a .png or .svg; written on every diagnosis, saying so "
                   "where nothing is wrong")
    d.add_argument("--json", action="store_true", help="print the result as JSON")
    t = sub.add_parser("train", help="train on scikit-learn's digits, by hand and by torch side by side",
                       description="Train the slides' network (or a described network with input [1, 8, 8]) on "
                       "scikit-learn's bundled handwritten digits, by hand and by torch side by side from the same "
                       "parameters on the same mini-batches; after every step compare the loss and every parameter. "
                       "A step that differs is checked again from the same parameters; if it still differs, training "
                       "stops and the diagnosis shows where the derivation breaks. Needs the train extra: "
                       "pip install -c constraints.txt 'backprop-crosscheck[train]'.", epilog=EXIT_CODES)
    source = t.add_mutually_exclusive_group()
    source.add_argument("--spec", metavar="FILE", help="a described network instead of the slides' (see "
                        "examples/digits-lenet.toml)")
    source.add_argument("--spec-json", metavar="TEXT", help="the description as JSON text")
    t.add_argument("--n-out", type=int, choices=(1, 10), help="the slides' network: 1 learns odd or even (the "
                   "default), 10 the ten digits")
    t.add_argument("--k", type=_shape, metavar="K|KHxKW", help="the slides' network: filter size (default 3)")
    t.add_argument("--epochs", type=int, default=10, help="passes over the training images (default 10)")
    t.add_argument("--batch", "-N", type=int, default=32, help="images per step (default 32)")
    t.add_argument("--lr", type=float, help="learning rate (default 2 for the slides' network, the description's "
                   "otherwise)")
    t.add_argument("--steps", type=int, help="stop after this many steps (default: all of the epochs')")
    t.add_argument("--seed", type=int, default=0, help="random seed of the split, the batches and the parameters "
                   "(default 0)")
    t.add_argument("--dtype", choices=DTYPE_CHOICES, default="float64", help="default float64")
    t.add_argument("--inject", metavar="NAME[@LAYER]", help="swap in a catalogued wrong derivation: training stops "
                   "at the first step it changes, with the diagnosis")
    t.add_argument("--save", metavar="RUN.npz", help="save the run (.npz, with a .json summary beside it; "
                   "crosscheck plot draws it)")
    t.add_argument("--plots", metavar="DIR", help="draw the run's pictures into DIR, PNG and SVG (docs/plots.md)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (it is shown only on a terminal)")
    t.add_argument("--json", action="store_true", help="print the result as JSON")

    pl = sub.add_parser("plot", help="draw a saved training run: curves, divergence, filters, confusion",
                        description="Draw the pictures of a training run saved by crosscheck train (an .npz file "
                        "with its arrays): training (loss and accuracy, both sides overlaid), divergence (the "
                        "largest relative difference per step against the tolerance), filter-gradient (manual, "
                        "autograd, their difference), filters, confusion. Each is written as DIR/NAME.FORMAT; the "
                        "written paths are printed. Needs matplotlib (the train extra).",
                        epilog="Exit codes: 0 written, 2 bad input (a file that is not a saved run, a folder that "
                        "is a file, matplotlib missing). docs/plots.md shows how to read each picture.")
    pl.add_argument("run", metavar="RUN.npz", help="a run saved by crosscheck train")
    pl.add_argument("--out", metavar="DIR", required=True, help="the folder to write into (made where missing)")
    pl.add_argument("--format", choices=("png", "svg", "both"), default="both", help="default both")
    pl.add_argument("--json", action="store_true", help="print the written paths as JSON")
    for command in (s, v, d, t):
        _ci_options(command)
    for command in (s, v, e, d, t):
        command.add_argument("--max-memory", type=_memory, metavar="SIZE", help="refuse a run whose arrays would "
                             "need more (default: half of this machine's memory), e.g. 512M or 12G")
    return p


def _seed(args):
    from crosscheck import render
    from crosscheck.check import check, seed_inject
    from crosscheck.subjects import SeedCase, SeedSubject

    case = SeedCase(input_shape=args.shape, kernel_shape=args.k, n_out=args.n_out, batch=args.batch, seed=args.seed,
                    dtype=args.dtype, reduction=args.reduction, lr=args.lr, steps=args.steps)
    subject = SeedSubject(case, None if args.inject is None else seed_inject(args.inject), args.max_memory)
    args.outputs.describe(str(case), dtype=case.dtype, seed=case.seed, injected=args.inject)
    result = check(subject)
    if args.json:
        return result, args.outputs.result(result, render.as_json(result, case=case.as_dict(), id=str(case)))
    return result, args.outputs.result(result, render.table(render.seed_header(subject), result))


def _verify(args):
    from crosscheck import render
    from crosscheck.check import check, inject
    from crosscheck.subjects import NetworkSubject
    from netdesc.description import load_spec, spec_from_json

    spec = spec_from_json(args.spec_json) if args.spec is None else load_spec(args.spec)
    wrong = None if args.inject is None else inject(args.inject, spec, args.dtype)
    subject = NetworkSubject(spec, args.seed, args.dtype, args.steps, wrong, args.max_memory)
    source = "--spec-json" if args.spec is None else args.spec
    args.outputs.describe(case_id(subject), description=source, dtype=args.dtype, seed=args.seed,
                          steps=subject.steps, injected=args.inject)
    result = check(subject)
    if args.json:
        text = render.as_json(result, spec=spec.name, source=source, seed=args.seed, steps=subject.steps)
    else:
        text = render.table(render.network_header(subject, source), result)
    return result, args.outputs.result(result, text)


def _explain(args):
    from crosscheck import render
    from crosscheck.check import seed_inject
    from crosscheck.subjects import SeedCase, SeedSubject

    if args.layer in ("batchnorm", "lstm"):
        explain = render.explain_batchnorm_text if args.layer == "batchnorm" else render.explain_lstm_text
        text, agree = explain(args.seed, args.dtype, args.inject)
        return agree, text
    wrong = None if args.inject is None else seed_inject(args.inject)
    settings = {} if wrong is None else wrong.case  # the SeedCase fields the wrong derivation needs to show
    # one sample, or two under a mean: over one sample the mean is the sum, and a forgotten 1/N could not show
    batch = 2 if settings.get("reduction") == "mean" else 1
    case = SeedCase(input_shape=args.shape, kernel_shape=args.k, n_out=1, batch=batch, seed=args.seed,
                    dtype=args.dtype, lr=args.lr, steps=1, **settings)
    text, agree = render.explain_text(SeedSubject(case, wrong, args.max_memory))
    return agree, text


def _diagnose(args):
    from crosscheck import render
    from crosscheck.catalogue import catalogue, find
    from crosscheck.check import check, entry_subject, inject, module_subject
    from crosscheck.diagnose import diagnose
    from crosscheck.subjects import NetworkSubject
    from netdesc.description import load_spec

    if args.list:
        if args.outputs.wanted:
            option = "--junit-xml" if args.outputs.junit is not None else "--markdown"
            raise InputError(f"{option}: given with --list, needs --wrong or --module (a list is no check)")
        if args.plot is not None:
            raise InputError("argument --plot: not allowed with argument --list (it diagnoses nothing)")
        return True, render.catalogue_text(catalogue(), args.json)
    top = check_positive_int("top", args.top, minimum=0)
    if args.plot is not None:  # before the diagnosis: a file that cannot be drawn into wastes no run
        from crosscheck import plots

        plots.picture_path(args.plot, "--plot")
        plots.require_matplotlib()
    if args.inject is not None and args.spec is None:
        raise InputError(f"--inject: got {args.inject!r} without --spec, needs --spec FILE, the description it "
                         "changes (--wrong brings its own network)")
    if args.wrong is not None:  # the subjects check the seed
        subject = entry_subject(find(args.wrong, "--wrong"), args.dtype, args.seed, args.max_memory)
    elif args.spec is not None:
        spec, dtype = load_spec(args.spec), args.dtype or "float64"
        wrong = None if args.inject is None else inject(args.inject, spec, dtype)
        subject = NetworkSubject(spec, 0 if args.seed is None else args.seed, dtype, None, wrong, args.max_memory)
    else:
        subject = module_subject(args.module, args.dtype or "float64", args.seed, args.max_memory)
    seed = subject.case.seed if hasattr(subject, "case") else subject.seed
    args.outputs.describe(case_id(subject), dtype=subject.dtype, seed=seed, injected=args.wrong or args.module)
    result = diagnose(subject, top)
    plotted = {} if args.plot is None else {"plot": str(plots.save_figure(plots.diagnosis_figure(result), args.plot))}
    if args.json:
        text = json.dumps(result.as_dict() | plotted, indent=2, allow_nan=False)
    else:
        text = "\n".join([render.diagnosis_text(result), *(f"\nplot: {p}" for p in plotted.values())])
    if args.outputs.wanted:  # every quantity of the walk the diagnosis took, the diagnosis in the first wrong one
        text = args.outputs.result(check(subject, train=False), text, result)
    return not result.wrong, text


def _train(args):
    from crosscheck import render
    from crosscheck import train as training
    from crosscheck.check import inject, seed_inject
    from netdesc.description import load_spec, spec_from_json

    if args.spec is None and args.spec_json is None:
        wrong = None if args.inject is None else seed_inject(args.inject)
        network = training.Slides(args.n_out or 1, args.k or (3, 3), 2.0 if args.lr is None else args.lr,
                                  dtype=args.dtype, seed=check_positive_int("seed", args.seed, minimum=0), wrong=wrong)
    else:
        for option, value in (("--n-out", args.n_out), ("--k", args.k)):
            if value is not None:
                raise InputError(f"{option}: got {value!r} with a description, needs the slides' network (a "
                                 "description sets its own layers)")
        spec = spec_from_json(args.spec_json) if args.spec is None else load_spec(args.spec)
        wrong = None if args.inject is None else inject(args.inject, spec, args.dtype)
        network = training.Described(spec, args.lr, args.dtype, check_positive_int("seed", args.seed, minimum=0),
                                     wrong, args.max_memory)
    if args.save is not None:  # before the run: a path that cannot be written wastes no training
        from crosscheck import runfile

        runfile.run_path(args.save, "--save")
    if args.plots is not None:
        from crosscheck import plots

        plots.plot_folder(args.plots)
        plots.require_matplotlib()
    args.outputs.describe(network.case_id, dtype=args.dtype, seed=args.seed, injected=args.inject,
                          **({} if args.spec is None else {"description": args.spec}))
    with training.progress_bar(not (args.json or args.no_progress)) as progress:
        result = training.train(network, args.epochs, args.batch, args.seed, args.steps, max_memory=args.max_memory,
                                progress=progress)
    written = [] if args.save is None else list(runfile.save_run(args.save, result.saved()))
    written += [] if args.plots is None else plots.save_plots(result.saved(), args.plots)
    if args.json:
        text = json.dumps(render.training_dict(result) | {"written": [str(p) for p in written]}, indent=2,
                          allow_nan=False)
    else:
        text = "\n".join([render.training_text(result), *(f"written: {p}" for p in written)])
    return result, args.outputs.result(result.result(), text, result.diagnosis)


def _plot(args):
    from crosscheck import plots, runfile

    plots.require_matplotlib()
    run = runfile.load_run(args.run)
    written = plots.save_plots(run, args.out, plots.FORMATS if args.format == "both" else (args.format,))
    if args.json:
        return True, json.dumps({"run": args.run, "written": [str(p) for p in written]}, indent=2)
    return True, "\n".join(map(str, written))


RUN = {"seed": _seed, "verify": _verify, "explain": _explain, "diagnose": _diagnose, "train": _train,
       "plot": _plot}


def main(argv=None):
    """Entry point of the console script; returns the exit code (EXIT_CODES)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    show_traceback = "--traceback" in argv
    argv = [a for a in argv if a != "--traceback"]
    as_json = "--json" in argv
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help", "--version"):
        argv = ["seed", *argv]  # seed is the default command
    outputs = None
    try:
        args = build_parser().parse_args(argv)
        # --junit-xml and --markdown: their paths checked now, before the run; written by the command, or by error
        outputs = args.outputs = Outputs(args.command, getattr(args, "junit_xml", None),
                                         getattr(args, "markdown", None), getattr(args, "json", False))
        outcome, text = RUN[args.command](args)
    except InputError as err:
        return error(err, EXIT_BAD_INPUT, as_json)
    except KeyboardInterrupt:
        return error("interrupted", EXIT_INTERRUPTED, as_json)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - reported in one line, never as a mismatch
        if isinstance(err, SystemExit) and _exit_of_crosscheck(err):  # --help, --version
            raise
        if show_traceback:
            traceback.print_exc()
        return error(*raised(err, show_traceback), as_json, outputs)
    passed = outcome if isinstance(outcome, bool) else outcome.passed
    _print(text)
    return EXIT_OK if passed else EXIT_MISMATCH


def _exit_of_crosscheck(err):
    """A SystemExit of argparse's --help or --version, not of the code under test calling sys.exit."""
    from crosscheck import frames

    return frames.last_under_test(err) is None


def raised(err, shown=False):
    """An exception that escaped a command -> (one line, exit code): EXIT_RAISED where the code under test raised
    it (naming the function, file and line of its last frame there, crosscheck.frames), EXIT_INTERNAL where the
    harness itself did."""
    from crosscheck import frames

    frame, hint = frames.last_under_test(err), "" if shown else "; --traceback shows where"
    if frame is not None:
        return (f"the code under test raised {frames.what(err)} (in {frame.name}, {frame.filename}:{frame.lineno})"
                f"{hint}", EXIT_RAISED)
    return f"crosscheck itself failed with {frames.what(err)} (a bug in crosscheck, please report it){hint}", \
        EXIT_INTERNAL


def error(err, code=EXIT_BAD_INPUT, as_json=False, outputs=None):
    """The one error printer: one line on stderr (a JSON document on stdout with --json) -> the exit code. With the
    command's Outputs, an exception that ended the run (exit 3 or 4) is also written to --junit-xml (a test case with
    an <error>) and --markdown, so that CI shows it; bad input (exit 2) writes nothing."""
    message = " ".join(str(err).splitlines())
    if outputs is not None:
        try:
            outputs.error(message, code)
        except InputError as failed:  # the report could not be written: said on the same line
            message = f"{message}; and {failed}"
    if as_json:
        _print(json.dumps({"error": message, "exit": code}))
    else:
        print(f"crosscheck: error: {message}", file=sys.stderr)
    return code


def _print(text):
    """Print, treating a reader that went away (crosscheck | head) as the end of output, not an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain again while flushing stdout at exit; point it at devnull (as its docs advise).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def console_main():
    """The console script (and python -m crosscheck). Ctrl-C ends it at once with one line and exit 130, wherever
    it lands: Python's KeyboardInterrupt may be turned into another error by a library it interrupts (torch,
    importing itself), or leave CPython marked to re-kill the process with SIGINT at exit."""
    as_json = "--json" in sys.argv[1:]
    signal.signal(signal.SIGINT, lambda signum, frame: _interrupted(as_json))
    # OpenBLAS's false invalid flag on a correct float32 product (docs/testing.md): not a line on stderr
    warnings.filterwarnings("ignore", "invalid value encountered in matmul", RuntimeWarning)
    sys.exit(main())


def _interrupted(as_json):
    error("interrupted", EXIT_INTERRUPTED, as_json)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)
