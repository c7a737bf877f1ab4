"""The pictures' look as docs/plots.md writes it down ("Sizes and styles"): the tables are read from the page and each
drawn picture is held to them, so that a change of look shows in the docs. Pinned: each picture's size in pixels
as its PNG comes out; the style of every line and point of the training and divergence pictures (line style,
width, marker, marker size, colour, alpha, the face of the floor's hollow circles); the grid's alpha and the legend's
font size; the heat map and confusion panels' title size; the column long titles are wrapped at; and the colour bar
that manual and autograd share, laid out beside both panels. Every picture is drawn under rcParams unlike
matplotlib's defaults, so that a style left to matplotlib where the table gives a value is caught, and a "default"
of the table is the program's rcParams."""

import functools
import pathlib
import re
import textwrap

import matplotlib
import numpy as np
import pytest
from cycler import cycler
from matplotlib.colors import to_rgba
from run_files import diagnosis_of, synthetic_run

from crosscheck import plots
from crosscheck.compare import ManualFailure
from crosscheck.diagnose import Diagnosis

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "plots.md"
# A program's own matplotlib set-up, every value unlike matplotlib's default and unlike the tables'.
RC = {"lines.linewidth": 2.7, "lines.markersize": 11.0, "legend.fontsize": 13.0, "grid.alpha": 0.8,
      "axes.titlesize": 15.0, "figure.figsize": (2.0, 1.0), "axes.prop_cycle": cycler(color=["olive", "purple"])}
LINE_STYLES = {"solid": "-", "dashed": "--", "dotted": ":", "none": "None"}


def _tables():
    """The tables of the section "Sizes and styles" of docs/plots.md, each a list of rows {header: cell}."""
    section = DOCS.read_text().split("\n## Sizes and styles\n", 1)[1].split("\n## ", 1)[0]
    tables, rows = [], None
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if rows is None:
                header, rows = cells, []
            elif not set("".join(cells)) <= set("-:"):
                rows.append(dict(zip(header, cells, strict=True)))
        elif rows is not None:
            tables.append(rows)
            rows = None
    return tables


SIZES, MARKS, OTHER = _tables()
OTHER = {row["what"]: row for row in OTHER}


def _number(cell, default):
    """A table cell as a number: "default" is the program's rcParams value `default`."""
    return matplotlib.rcParams[default] if cell == "default" else float(cell)


def _pictures(row):
    return [p.strip() for p in OTHER[row]["pictures"].split(",")]


# --- the pictures, drawn under the program's own rcParams ---------------------------------------------------------

def _divergence_run():
    """A run of 8 steps, stopped at step 6: exact zeros (drawn at the floor), an inf and a NaN among its values."""
    run = synthetic_run(steps=8, epochs=2, stopped_at=6)
    run["max_rel_diff"] = np.array([0.0, 3e-16, np.inf, 0.0, 2e-12, np.nan, 1e-9, 4e-16])
    return run


BANK = (4, 2, 3, 3)
BUILD = {
    "training": lambda: plots.training_figure(synthetic_run(steps=12, epochs=2, stopped_at=9)),
    "divergence": lambda: plots.divergence_figure(_divergence_run()),
    "filter-gradient": lambda: plots.filter_gradient_figure(synthetic_run(bank=BANK)),
    "filter-gradient, shapes differ": lambda: plots.filter_gradient_figure(synthetic_run(bank=BANK) | {
        "filter_grad_manual": np.zeros((3, 3))}),
    "filters": lambda: plots.filters_figure(synthetic_run(bank=BANK)),
    "confusion": lambda: plots.confusion_figure(synthetic_run(classes=4)),
    "diagnosis": lambda: plots.diagnosis_figure(diagnosis_of(np.arange(6.0).reshape(2, 3), np.zeros((2, 3)))),
    "diagnosis, autograd alone": lambda: plots.diagnosis_figure(diagnosis_of(ManualFailure("returned None"),
                                                                           np.zeros((2, 3)))),
    "diagnosis, nothing wrong": lambda: plots.diagnosis_figure(Diagnosis("a test subject", "float64", ("a",))),
}


def _draw(name):
    with matplotlib.rc_context(RC):
        return BUILD[name]()


def _png_size(path):
    """(width, height) of a PNG file, from its IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


# --- sizes --------------------------------------------------------------------------------------------------------

def test_the_size_table_names_every_picture_once():
    """The table has one row for each picture this file draws, no more, no fewer."""
    assert sorted(row["picture"] for row in SIZES) == sorted(BUILD)


@pytest.mark.parametrize("row", SIZES, ids=[row["picture"] for row in SIZES])
def test_each_picture_has_the_size_in_pixels_the_table_gives(row, tmp_path):
    """Saved as PNG, the picture is as many pixels wide and high as its row says (at DPI, 110)."""
    width, height = (int(n) for n in row["width × height (pixels)"].split("×"))
    path = plots.save_figure(_draw(row["picture"]), tmp_path / "picture.png")
    assert _png_size(path) == (width, height)


# --- the lines and points -----------------------------------------------------------------------------------------

# Which lines each row of the marks' table is about, by their legend labels.
LABELLED = {
    "manual": lambda label: label.endswith("manual"),
    "autograd": lambda label: label.endswith("autograd"),
    "stopped at step": lambda label: label.startswith("stopped at step "),
    "tolerance": lambda label: label.startswith("tolerance: rtol "),
    "largest relative difference": lambda label: label.startswith("largest relative difference "),
    "below the floor": lambda label: " below 1e-17 " in label,
    "inf or NaN": lambda label: label.startswith("inf or NaN, drawn at "),
}


@functools.cache
def _lines():
    """(panel title, line) for every line of the training and divergence pictures, drawn under RC."""
    return [(ax.get_title(), line) for name in ("training", "divergence") for ax in _draw(name).axes
            for line in ax.get_lines()]


def test_every_line_of_the_run_pictures_has_one_row_in_the_marks_table():
    """Each line drawn is one row's, and each row has lines: a line the table leaves out would go unstyled."""
    assert sorted(row["mark"] for row in MARKS) == sorted(LABELLED)
    rows = [[mark for mark, about in LABELLED.items() if about(line.get_label())] for _, line in _lines()]
    assert all(len(found) == 1 for found in rows)
    assert {found[0] for found in rows} == set(LABELLED)


def _marker(cell, panel):
    """The marker a cell of the marker column gives a line on `panel`: `o` "on the accuracy panel" only."""
    found = re.match(r"`(.)`", cell)
    if found is None or ("on the accuracy panel" in cell and panel != "accuracy after each epoch"):
        assert cell.startswith(("none", "`")), cell
        return "None"
    return found.group(1)


def _colour(cell, label):
    """The colour a cell of the colour column gives a line: "A, held-out B" is B for the held-out split's."""
    first, _, held_out = cell.partition(", held-out ")
    return to_rgba(held_out if label.startswith("held-out: ") else first)


@pytest.mark.parametrize("row", MARKS, ids=[row["mark"] for row in MARKS])
def test_each_line_and_point_has_the_style_its_row_gives(row):
    """Line style, width, marker, marker size, colour and alpha of every line of the row's mark, as the table
    says; a hollow circle's face in the colour it names. Drawn under rcParams unlike matplotlib's defaults, so a
    value left to matplotlib is caught, and "default" is the program's value."""
    lines = [(panel, line) for panel, line in _lines() if LABELLED[row["mark"]](line.get_label())]
    assert lines
    with matplotlib.rc_context(RC):
        for panel, line in lines:
            what = (row["mark"], panel, line.get_label())
            assert line.get_linestyle() == LINE_STYLES[row["line"]], what
            if row["width"]:
                assert line.get_linewidth() == _number(row["width"], "lines.linewidth"), what
            marker = _marker(row["marker"], panel)
            assert line.get_marker() == marker, what
            if marker != "None":
                assert line.get_markersize() == _number(row["marker size"], "lines.markersize"), what
            face = re.search(r"face (\S+)", row["marker"])
            if face:
                assert to_rgba(line.get_markerfacecolor()) == to_rgba(face.group(1)), what
            assert to_rgba(line.get_color()) == _colour(row["colour"], line.get_label()), what
            assert (line.get_alpha() or 1.0) == float(row["alpha"]), what


# --- grid, legend, titles -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", _pictures("grid alpha"))
def test_the_grid_and_the_legend_of_a_line_picture_are_as_the_table_says(name):
    """Every grid line of every panel has the table's alpha, every legend entry its font size."""
    assert _pictures("legend font size") == _pictures("grid alpha")
    for ax in _draw(name).axes:
        grid = [*ax.xaxis.get_gridlines(), *ax.yaxis.get_gridlines()]
        assert grid and all(g.get_visible() and g.get_alpha() == float(OTHER["grid alpha"]["value"]) for g in grid)
        texts = ax.get_legend().get_texts()
        assert texts and {t.get_fontsize() for t in texts} == {float(OTHER["legend font size"]["value"])}


@pytest.mark.parametrize("name", [n for n in BUILD if n.split(",")[0] in _pictures("panel title font size")
                                  and n != "diagnosis, nothing wrong"])
def test_the_heat_map_and_confusion_panels_titles_have_the_tables_size(name):
    """Each panel of a heat map or a confusion matrix is titled at the table's font size, whatever the program's
    axes.titlesize."""
    panels = [ax for ax in _draw(name).axes if ax.get_label() != "<colorbar>"]
    assert panels and all(ax.get_title() for ax in panels)
    assert {ax.title.get_fontsize() for ax in panels} == {float(OTHER["panel title font size"]["value"])}


def _wrapped_at(lines, column):
    """Lines of one paragraph filled up to `column` characters: none longer, none that could take the next line's
    first word, and more than one (the paragraph needed wrapping)."""
    assert len(lines) > 1 and max(map(len, lines)) <= column
    assert textwrap.wrap(" ".join(lines), column) == lines


LONG_SUBJECT = "a test subject named at length, " * 6 + "with its layers"
WRAPPED = {  # a picture -> (its wrapped title's row, one paragraph of the title, as lines)
    # the break at 80 falls inside manual's shape: at 81 the first line would be 81 characters long
    "filter-gradient, shapes differ": ("title wrapped at, autograd alone", lambda: plots.filter_gradient_figure(
        synthetic_run(bank=(1, 1, 3, 4)) | {"filter_grad_manual": np.zeros((1, 1, 3, 3))}).get_suptitle()
        .split("\n")),
    "filters, shapes differ": ("title wrapped at (characters a line)", lambda: plots.filters_figure(
        synthetic_run(bank=(64, 3, 11, 12)) | {"filters_manual": np.zeros((1, 1, 0, 100000000))}).get_suptitle()
        .split("\n")),
    "diagnosis": ("title wrapped at (characters a line)", lambda: plots.diagnosis_figure(
        diagnosis_of(np.ones((2, 3)), np.zeros((2, 3)), subject=LONG_SUBJECT)).get_suptitle().split("\n")),
    # a 76-character word and a 4-character one: 81 characters together, so a break at 81 would keep them on a line
    "diagnosis, autograd alone": ("title wrapped at, autograd alone", lambda: plots.diagnosis_figure(
        diagnosis_of(ManualFailure("returned None"), np.zeros((2, 3)),
                     subject="w" * 76 + " abcd" + " more" * 20))
        .get_suptitle().split("\n")),
}


@pytest.mark.parametrize("name", WRAPPED)
def test_a_long_title_is_wrapped_at_the_tables_column(name):
    """A title longer than a line is filled up to the table's column: 110 characters, 80 where autograd's array is
    drawn alone."""
    row, paragraph = WRAPPED[name]
    assert name.split(",")[0] in _pictures(row)
    with matplotlib.rc_context(RC):
        lines = paragraph()
    if name.startswith("diagnosis"):  # the subject's paragraph, between the quantity's line and the problem's
        assert lines[0].startswith("first wrong quantity: ")
        lines = lines[1: next(i for i, line in enumerate(lines) if line.endswith(", float64")) + 1]
    _wrapped_at(lines, int(OTHER[row]["value"]))


# --- the shared colour bar ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", _pictures("colour bar"))
def test_manual_and_autograd_share_one_colour_bar_laid_out_beside_both(name):
    """One colour bar serves manual's and autograd's panels (they share a scale): autograd's image carries it, it
    stands right of both panels, within their height, and matplotlib lays both panels out as its parents,
    anchoring each on the bar's side (panchor (1.0, 0.5)); a bar made for autograd's panel alone would leave
    manual's centred in its room."""
    assert OTHER["colour bar"]["value"] == "one for manual and autograd, beside both"
    figure = _draw(name)
    figure.canvas.draw()
    manual, autograd = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"][:2]
    assert manual.get_title().startswith("manual") and autograd.get_title().startswith("autograd")
    bar = autograd.images[0].colorbar
    assert bar is not None and manual.images[0].colorbar is None
    box, left, right = (ax.get_position() for ax in (bar.ax, manual, autograd))
    assert left.x1 < right.x0 < right.x1 <= box.x0
    room = [ax.get_position(original=True) for ax in (manual, autograd)]  # before the images' aspect shrinks them
    assert min(r.y0 for r in room) <= box.y0 < box.y1 <= max(r.y1 for r in room)
    assert tuple(manual.get_anchor()) == tuple(autograd.get_anchor()) == (1.0, 0.5)
