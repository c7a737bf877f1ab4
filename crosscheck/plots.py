"""Pictures: a saved training run (crosscheck.runfile) and the first wrong quantity of a diagnosis, as PNG or SVG.

matplotlib draws them through its Agg canvas on a ``matplotlib.figure.Figure`` of its own, never through pyplot:
no backend is switched and no figure is registered, so a program that imports crosscheck keeps its matplotlib
set-up. matplotlib loads on the first picture, never when crosscheck starts; without it, an InputError says how to
install it (NEEDS_MATPLOTLIB).

The pictures of a run (FIGURES, ``save_plots`` writes them as ``<name>.<format>``):

- training: the loss per step and the accuracy per epoch (training and held-out split), both sides overlaid;
- divergence: the largest relative difference per step on a log axis, the tolerance rtol drawn across; a value
  below LOG_FLOOR (an exact 0: the two sides equal bit for bit) is drawn at the floor, a non-finite one at the top;
- filter-gradient: the first convolution's weight gradient at the last step, manual, autograd, manual - autograd;
- filters: the first convolution's weights at the end, manual and autograd;
- confusion: the held-out confusion matrices of both sides, counts in the cells.

A (C_out, C_in, KH, KW) filter bank is drawn tiled (``tile``): one KH x KW block per output channel (rows) and
input channel (columns), grey lines between them; with one input channel the output channels wrap row by row.
Any array is drawn as a 2-D image by ``as_image``: a 0-d array as 1 x 1, a 1-D one as a row, a 2-D one as it is,
and of a larger one the last two axes at one index of the leading axes (the diagnosis picks the index holding the
element furthest out of tolerance, and says which). An array without elements is a panel that says so.
"""

import math
import pathlib
import textwrap

import numpy as np

from crosscheck import runfile
from crosscheck.compare import ManualFailure, excess
from crosscheck.tolerances import tolerance_for
from netdesc.checks import InputError

FORMATS = ("png", "svg")
NEEDS_MATPLOTLIB = "plots need matplotlib: pip install -c constraints.txt 'backprop-crosscheck[train]'"
# Below every nonzero relative difference of two float64 numbers (at least 2**-53, about 1.1e-16): an exact 0 is
# drawn here, so that a log axis can show it.
LOG_FLOOR = 1e-17
DPI = 110  # PNG pixels per inch: the figures come out about 900 to 1,300 pixels wide
MAX_ANNOTATED = 20  # confusion matrices of up to this many classes get their counts written in the cells
SIGNED = "RdBu_r"  # values of either sign: 0 white, positive red, negative blue
BLANK = "0.8"  # grey: the lines between tiled blocks, and NaN or infinite values
MANUAL = {"linestyle": "-", "linewidth": 3.5, "alpha": 0.45}  # a broad pale band...
AUTOGRAD = {"linestyle": "--", "linewidth": 1.3}  # ...and a dark dashed line through it where the two agree
BLUES, GREENS = ("tab:blue", "navy"), ("tab:green", "darkgreen")  # (manual, autograd) of one series


def require_matplotlib():
    """InputError (NEEDS_MATPLOTLIB) unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(NEEDS_MATPLOTLIB) from None


def _figure(width, height):
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def picture_path(path, name="path"):
    """A file to draw into -> (Path, its format 'png' or 'svg', from its suffix); InputError naming `name` for
    another suffix or a folder."""
    path = pathlib.Path(path)
    fmt = path.suffix.lower()[1:]
    if fmt not in FORMATS:
        raise InputError(f"{name}: got {str(path)!r}, needs a file name ending in .png or .svg")
    if path.is_dir():
        raise InputError(f"{name}: got {str(path)!r}, a folder, needs a file name ending in .png or .svg")
    existing = next(p for p in path.absolute().parents if p.exists())  # the root at the latest
    if not existing.is_dir():
        raise InputError(f"{name}: got {str(path)!r}, needs a folder where the file {existing} stands")
    return path, fmt


def _writer(figure, fmt):
    return lambda f: figure.savefig(f, format=fmt, dpi=DPI)


def save_figure(figure, path):
    """Write a Figure to `path` (its suffix picks PNG or SVG), atomically; its folder is made -> the path."""
    path, fmt = picture_path(path)
    runfile.write_atomically({path: _writer(figure, fmt)})
    return path


# --- arrays as images ----------------------------------------------------------------------------------------------

def as_image(array, at=()):
    """Any array as a 2-D float64 image -> (image, the index shown): 0-d as 1 x 1, 1-D as one row, 2-D as it is,
    N-D as the last two axes at the leading index `at` (default all zeros; shorter: padded with zeros)."""
    a = np.asarray(array, np.float64)
    if a.ndim < 2:
        return a.reshape(1, -1) if a.ndim else a.reshape(1, 1), ""
    if a.size == 0 and a.ndim > 2:  # no slice to take
        return np.empty((0, 0)), ""
    lead = tuple(at)[: a.ndim - 2]
    lead += (0,) * (a.ndim - 2 - len(lead))
    if not lead:
        return a, ""
    return a[lead], "[" + ", ".join([*map(str, lead), ":", ":"]) + "]"


def tile_grid(shape):
    """The (rows, columns) of blocks `tile` lays a (C_out, C_in, KH, KW) bank out in: C_out x C_in, or, with one
    input channel, the output channels wrapped row by row into ceil(sqrt(C_out)) columns."""
    C_out, C_in = shape[:2]
    if C_in == 1:
        columns = max(math.ceil(math.sqrt(C_out)), 1)
        return math.ceil(C_out / columns), columns
    return C_out, C_in


def tile(bank):
    """A (C_out, C_in, KH, KW) filter bank as one image of KH x KW blocks with a blank (NaN) line between them:
    block (o, i) at block row o, column i; with one input channel, output channel o at block row o // columns,
    column o % columns (tile_grid). A 2-D array as it is."""
    a = np.asarray(bank, np.float64)
    if a.ndim != 4:
        return a
    if a.size == 0:
        return np.empty((0, 0))
    C_out, C_in, KH, KW = a.shape
    rows, columns = tile_grid(a.shape)
    image = np.full((rows * (KH + 1) - 1, columns * (KW + 1) - 1), np.nan)
    for o in range(C_out):
        for i in range(C_in):
            r, c = (o // columns, o % columns) if C_in == 1 else (o, i)
            image[r * (KH + 1): r * (KH + 1) + KH, c * (KW + 1): c * (KW + 1) + KW] = a[o, i]
    return image


def _limit(*images):
    """The half-width of a colour scale symmetric about 0 that holds every finite value (1 where all are 0)."""
    finite = [np.abs(x[np.isfinite(x)]).max() for x in images if np.isfinite(x).any()]
    top = max(finite, default=0.0)
    return float(top) if top > 0 else 1.0


def _heat_map(ax, image, limit, title):
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title, fontsize=10)
    if image.size == 0:
        ax.text(0.5, 0.5, f"no elements: shape {image.shape}", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return None
    h, w = image.shape
    aspect = "auto" if max(h, w) > 8 * min(h, w) else "equal"
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    return ax.imshow(image, cmap=colormaps[SIGNED].with_extremes(bad=BLANK), norm=Normalize(-limit, limit),
                     interpolation="nearest", aspect=aspect)


def _bank_ticks(axes, shape):
    """A tiled bank's axes: block rows and columns named by channel, no pixel ticks."""
    if len(shape) != 4:
        for ax in axes:
            ax.set(xlabel="KW", ylabel="KH")
        return
    C_out, C_in, KH, KW = shape
    rows, columns = tile_grid(shape)
    for ax in axes:
        if C_in == 1:
            ax.set(xticks=[], yticks=[], xlabel=f"output channels 0 to {C_out - 1}, row by row")
        else:
            ax.set_xticks([c * (KW + 1) + (KW - 1) / 2 for c in range(columns)], range(columns))
            ax.set_yticks([r * (KH + 1) + (KH - 1) / 2 for r in range(rows)], range(rows))
            ax.set(xlabel="input channel", ylabel="output channel")


def _colour_bar(figure, mappable, axes, label):
    if mappable is not None:
        figure.colorbar(mappable, ax=axes, label=label, shrink=0.85)


def _wrapped(text, width=110):
    """Each line of `text` wrapped at `width` characters."""
    return "\n".join(wrapped for line in text.splitlines() for wrapped in textwrap.wrap(line, width))


def _three_panels(figure, manual, autograd, names, label):
    """manual | autograd (one colour scale, one colour bar) | manual - autograd (its own; none where it is 0
    everywhere) -> the three axes. The images are 2-D float64 of one shape; names[2] a line under the third's
    title."""
    axes = figure.subplots(1, 3)
    limit = _limit(manual, autograd)
    difference = manual - autograd
    shown = [_heat_map(axes[0], manual, limit, names[0]), _heat_map(axes[1], autograd, limit, names[1])]
    _colour_bar(figure, shown[1], list(axes[:2]), label)
    blank = np.isnan(manual) & np.isnan(autograd)  # between tiled blocks, or NaN on both sides
    zero = difference.size > 0 and bool(np.all((difference == 0) | blank))
    title = "\n".join(filter(None, ["manual − autograd", "0 everywhere: equal bit for bit" if zero else names[2]]))
    image = _heat_map(axes[2], difference, _limit(difference), title)
    if not zero:
        _colour_bar(figure, image, axes[2], "manual − autograd")
    return axes


def _one_panel(figure, autograd, title, label):
    ax = figure.subplots(1, 1)
    _colour_bar(figure, _heat_map(ax, autograd, _limit(autograd), title), ax, label)
    return ax


# --- a run -----------------------------------------------------------------------------------------------------------

def _title(run):
    s = runfile.summary_of(run)
    title = f"{s['title']}, {s['dtype']}, {s['steps']} steps"
    if s["stopped_at"] is not None:
        title += f", stopped at step {s['stopped_at']}: the first divergence"
    return title


def _stop_line(ax, run):
    stopped = runfile.summary_of(run)["stopped_at"]
    if stopped is not None:
        ax.axvline(stopped, color="tab:red", linestyle=":", linewidth=1.5, label=f"stopped at step {stopped}")


def _pair(ax, x, manual, autograd, colours, what, marker=None):
    ax.plot(x, manual, color=colours[0], marker=marker, label=f"{what}manual", **MANUAL)
    ax.plot(x, autograd, color=colours[1], marker=marker, markersize=3, label=f"{what}autograd", **AUTOGRAD)


def training_figure(run):
    """Two panels: the mini-batch loss per step and the accuracy per epoch (training and held-out split); manual a
    broad solid band, autograd a dashed line through it."""
    from matplotlib.ticker import MaxNLocator

    run = runfile.check_run(run)
    figure = _figure(11, 4.3)
    loss, accuracy = figure.subplots(1, 2)
    steps = np.arange(1, len(run["loss_manual"]) + 1)
    _pair(loss, steps, run["loss_manual"], run["loss_autograd"], BLUES, "")
    _stop_line(loss, run)
    loss.set(title="loss", xlabel="step", ylabel="mini-batch loss before the step")
    if not len(steps):
        loss.text(0.5, 0.5, "no step done", ha="center", va="center", transform=loss.transAxes)
    epochs = np.arange(1, len(run["epoch_steps"]) + 1)
    for split, name, colour in (("train", "training", BLUES), ("test", "held-out", GREENS)):
        _pair(accuracy, epochs, run[f"{split}_accuracy_manual"], run[f"{split}_accuracy_autograd"], colour,
              f"{name}: ", marker="o")
    if not len(epochs):
        accuracy.text(0.5, 0.5, "no epoch finished", ha="center", va="center", transform=accuracy.transAxes)
    accuracy.set(title="accuracy after each epoch", xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    accuracy.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    for ax in (loss, accuracy):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(_title(run))
    return figure


def divergence_figure(run):
    """The largest relative difference per step on a log axis, with the tolerance rtol drawn across: values below
    LOG_FLOOR drawn at the floor as hollow circles (their legend entry says so), non-finite ones as crosses at the
    top."""
    run = runfile.check_run(run)
    values, rtol = run["max_rel_diff"], float(run["rtol"])
    figure = _figure(9, 4.3)
    ax = figure.subplots(1, 1)
    ax.set_yscale("log")
    steps = np.arange(1, len(values) + 1)
    finite = np.isfinite(values)
    floored = finite & (values < LOG_FLOOR)
    shown = np.where(finite, np.maximum(values, LOG_FLOOR), np.nan)
    top = 100 * max(rtol, float(shown[finite].max(initial=LOG_FLOOR)))
    drawn = [rtol, *shown[finite], *([top] if not finite.all() else [])]
    ax.set_ylim(min(drawn) / 3, max(drawn) * 3)  # set before drawing, not found after: one value has no range
    ax.plot(steps, shown, marker=".", markersize=4, linewidth=1, color="tab:blue",
            label="largest relative difference (the loss and every parameter)")
    if floored.any():
        ax.plot(steps[floored], np.full(floored.sum(), LOG_FLOOR), "o", markersize=5, markerfacecolor="white",
                color="tab:gray", label=f"{floored.sum()} below {LOG_FLOOR:g} (0: equal bit for bit), drawn at "
                f"{LOG_FLOOR:g}")
    ax.axhline(rtol, color="tab:red", linestyle="--", label=f"tolerance: rtol {rtol:g}")
    if not finite.all():
        ax.plot(steps[~finite], np.full((~finite).sum(), top), "x", color="tab:red", markersize=8,
                label=f"inf or NaN, drawn at {top:.0e}")
    _stop_line(ax, run)
    ax.set(title="divergence per step", xlabel="step", ylabel="largest |manual − autograd| / |autograd|")
    if not len(values):
        ax.text(0.5, 0.5, "no step done", ha="center", va="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.suptitle(_title(run))
    return figure


def _bank_text(shape):
    return f"{shape}, tiled" if len(shape) == 4 else f"{shape} (KH, KW)"


def filter_gradient_figure(run):
    """manual | autograd | manual - autograd heat maps of the first convolution's weight gradient at the last step,
    the first two on one colour scale; a 4-D bank tiled. Where the two shapes differ: autograd's alone."""
    run = runfile.check_run(run)
    m, a = run["filter_grad_manual"], run["filter_grad_autograd"]
    label = "dE/df" if a.ndim == 2 else "dE/dweight"
    what = label if a.ndim == 2 else "dE/dweight of the first conv2d"
    if m.shape != a.shape:
        figure = _figure(8, 4.3)
        _bank_ticks([_one_panel(figure, tile(a), "autograd", label)], a.shape)
        figure.suptitle(_wrapped(f"{what} at the last step: shape mismatch: manual {m.shape}, autograd {a.shape}",
                                 80))
        return figure
    figure = _figure(12, 4.3)
    axes = _three_panels(figure, tile(m), tile(a), ("manual", "autograd", ""), label)
    _bank_ticks(axes, a.shape)
    figure.suptitle(f"{what} at the last step, {_bank_text(a.shape)}")
    return figure


def filters_figure(run):
    """The first convolution's weights at the end of the run, manual and autograd side by side on one colour scale;
    a 4-D bank tiled."""
    run = runfile.check_run(run)
    m, a = run["filters_manual"], run["filters_autograd"]
    figure = _figure(9, 4.3)
    axes = figure.subplots(1, 2)
    limit = _limit(tile(m), tile(a))
    _heat_map(axes[0], tile(m), limit, "manual")
    _colour_bar(figure, _heat_map(axes[1], tile(a), limit, "autograd"), list(axes), "weight")
    _bank_ticks(axes[:1], m.shape)
    _bank_ticks(axes[1:], a.shape)
    if m.shape == a.shape:
        gap = np.abs(m.astype(np.float64) - a)
        detail = f"{_bank_text(a.shape)}; largest |manual − autograd| {gap[np.isfinite(gap)].max(initial=0.0):.3g}"
    else:
        detail = f"shape mismatch: manual {m.shape}, autograd {a.shape}"
    figure.suptitle(_wrapped(f"the first convolution's weights at the end: {detail}"))
    return figure


def _confusion_panel(ax, counts, top, side):
    from matplotlib.colors import Normalize

    C, total = counts.shape[0], counts.sum()
    accuracy = f"{np.trace(counts) / total:.1%}" if total else "no samples"
    ax.set_title(f"{side}: held-out accuracy {accuracy}", fontsize=10)
    ax.set(xlabel="predicted class", ylabel="true class")
    if C == 0:
        ax.text(0.5, 0.5, "no classes", ha="center", va="center", transform=ax.transAxes)
        return None
    image = ax.imshow(counts, cmap="Blues", norm=Normalize(0, max(top, 1)), interpolation="nearest")
    ticks = range(C) if C <= MAX_ANNOTATED else range(0, C, math.ceil(C / MAX_ANNOTATED))
    ax.set_xticks(list(ticks))
    ax.set_yticks(list(ticks))
    if C <= MAX_ANNOTATED:
        size = 9 if C <= 10 else 6
        for (t, p), n in np.ndenumerate(counts):
            ax.text(p, t, str(n), ha="center", va="center", fontsize=size,
                    color="white" if n > 0.6 * top else "black")
    return image


def confusion_figure(run):
    """The held-out confusion matrices, manual and autograd: rows the true class, columns the predicted one, the
    counts written in the cells (up to MAX_ANNOTATED classes)."""
    run = runfile.check_run(run)
    m, a = run["confusion_manual"], run["confusion_autograd"]
    figure = _figure(10, 4.8)
    axes = figure.subplots(1, 2)
    top = int(max(m.max(initial=0), a.max(initial=0)))
    _confusion_panel(axes[0], m, top, "manual")
    _colour_bar(figure, _confusion_panel(axes[1], a, top, "autograd"), list(axes), "samples")
    differ = int((m != a).sum())
    agree = "the two sides agree on every count" if not differ else f"the two sides differ on {differ} counts"
    figure.suptitle(f"confusion on the held-out split: {agree}")
    return figure


FIGURES = {"training": training_figure, "divergence": divergence_figure, "filter-gradient": filter_gradient_figure,
           "filters": filters_figure, "confusion": confusion_figure}


def _formats(formats):
    chosen = (formats,) if isinstance(formats, str) else tuple(formats)
    if not chosen or any(f not in FORMATS for f in chosen) or len(set(chosen)) < len(chosen):
        raise InputError(f"formats: got {formats!r}, needs one or both of 'png', 'svg'")
    return chosen


def plot_folder(directory):
    """A folder to draw a run's pictures into -> Path; InputError where a file stands there (checked before a run
    starts, by crosscheck train --plots, and again by save_plots)."""
    directory = pathlib.Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: got a file, needs a folder for the plots")
    return directory


def save_plots(run, directory, formats=FORMATS):
    """Every figure of FIGURES for a run (a mapping of runfile.RUN_KEYS arrays), written as <name>.<format> into
    `directory` (made where missing), all files or none -> their paths, figure by figure. InputError where
    `directory` is a file, for an unknown format, or for a run that is not as RUN_KEYS says."""
    directory = plot_folder(directory)
    chosen = _formats(formats)
    run = runfile.check_run(run)
    files = {}
    for name, draw in FIGURES.items():
        figure = draw(run)
        for fmt in chosen:
            files[directory / f"{name}.{fmt}"] = _writer(figure, fmt)
    runfile.write_atomically(files)
    return list(files)


# --- a diagnosis -----------------------------------------------------------------------------------------------------

def _worst_lead(m, a, dtype):
    """The leading index (all but the last two axes) of the element furthest out of tolerance."""
    ratio = np.nan_to_num(excess(m, a, tolerance_for(dtype)), nan=np.inf)
    return np.unravel_index(int(np.argmax(ratio)), ratio.shape)[: max(ratio.ndim - 2, 0)]


def _slice_labels(ax, ndim):
    if ndim >= 2:
        ax.set(xlabel=f"axis {ndim - 1}", ylabel=f"axis {ndim - 2}")
    elif ndim == 1:
        ax.set(xlabel="index", yticks=[])


def diagnosis_figure(diagnosis):
    """The first wrong quantity of a diagnosis (crosscheck.diagnose.Diagnosis) as manual | autograd | manual -
    autograd heat maps, titled with its name and where it is; of an array above 2-D the slice holding the element
    furthest out of tolerance (as_image). A manual side that failed or has another shape: autograd's alone, the
    problem in the title. Nothing wrong: one panel that says so."""
    d = diagnosis
    if not d.wrong:
        figure = _figure(8, 2.2)
        ax = figure.subplots(1, 1)
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"nothing to draw: all {len(d.checked)} quantities agree with autograd\n(forward, "
                "backward from the loss, updates)", ha="center", va="center", transform=ax.transAxes)
        figure.suptitle(f"{d.subject}, {d.dtype}")
        return figure
    step, problem = d.step, d.first.problem
    m, a = step.manual, np.asarray(step.autograd)
    lines = [f"first wrong quantity: {d.quantity}, shape {a.shape}",
             f"{d.subject}, {d.dtype}" + (f"; injected: {d.injected}" if d.injected else "")]
    if isinstance(m, ManualFailure) or np.shape(m) != a.shape:
        figure = _figure(8, 4.8)
        image, index = as_image(a)
        _slice_labels(_one_panel(figure, image, f"autograd {index}".strip(), step.quantity), a.ndim)
        figure.suptitle(_wrapped("\n".join([*lines, problem]), 80))
        return figure
    figure = _figure(12, 4.8)
    m = np.asarray(m)
    lead = _worst_lead(m, a, d.dtype) if a.size else ()
    (manual, index), (autograd, _) = as_image(m, lead), as_image(a, lead)
    out = int((np.nan_to_num(excess(manual, autograd, tolerance_for(d.dtype)), nan=np.inf) > 1).sum())
    axes = _three_panels(figure, manual, autograd, (f"manual {index}".strip(), f"autograd {index}".strip(),
                                                    f"{out} of {manual.size} out of tolerance"), step.quantity)
    for ax in axes:
        _slice_labels(ax, a.ndim)
    lines += [problem] if problem else []
    lines += [f"showing {index}: the slice holding the element furthest out of tolerance"] if index else []
    figure.suptitle(_wrapped("\n".join(lines)))
    return figure
