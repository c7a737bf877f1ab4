"""Edges of crosscheck.plots that the other picture tests leave open, found by mutation testing: a heat map whose
values are all 0 (or none finite) is drawn on the colour scale -1 to 1, so that its cells come out white, the colour
of 0 (the filters of a bank of zeros, the NaN bank, and the difference panel of two equal gradients); and a title
line of 111 characters is wrapped at 110, the table's column (docs/plots.md, "Sizes and styles"), not kept whole."""

import numpy as np
import pytest
from run_files import diagnosis_of, synthetic_run

from crosscheck import plots

BANK = (2, 2, 3, 3)


def _images(figure):
    """(panel title, image) of every heat map of a figure, left to right."""
    return [(ax.get_title(), ax.images[0]) for ax in figure.axes if ax.images]


def _white_at_zero(image):
    """0 has the colour map's middle colour (white in RdBu_r): the scale is symmetric about 0."""
    assert tuple(image.to_rgba(0.0)) == tuple(image.cmap(0.5))


@pytest.mark.parametrize("fill", [0.0, np.nan], ids=["zeros", "nan"])
def test_a_bank_without_a_nonzero_finite_weight_is_drawn_on_the_scale_minus_one_to_one(fill):
    """Both sides' weights all 0 (or all NaN): no value gives the scale a width, so it is -1 to 1 on both panels."""
    bank = np.full(BANK, fill)
    figure = plots.filters_figure(synthetic_run(bank=BANK) | {"filters_manual": bank, "filters_autograd": bank.copy()})
    images = _images(figure)
    assert [(title, image.get_clim()) for title, image in images] == [("manual", (-1.0, 1.0)),
                                                                        ("autograd", (-1.0, 1.0))]
    for _, image in images:
        _white_at_zero(image)


def test_the_difference_of_two_equal_gradients_is_drawn_white_on_the_scale_minus_one_to_one():
    """manual == autograd: the difference panel, 0 everywhere, says so and is drawn on -1 to 1, all white."""
    run = synthetic_run(bank=BANK)
    figure = plots.filter_gradient_figure(run | {"filter_grad_manual": run["filter_grad_autograd"].copy()})
    title, image = _images(figure)[2]
    assert title == "manual − autograd\n0 everywhere: equal bit for bit"
    assert image.get_clim() == (-1.0, 1.0)
    _white_at_zero(image)


def test_a_title_line_of_111_characters_is_wrapped_at_110():
    """The diagnosis' subject line, 111 characters with its dtype, breaks before its last word: 110 is the column."""
    subject = "w" * 97 + " tail"
    assert len(f"{subject}, float64") == 111
    figure = plots.diagnosis_figure(diagnosis_of(np.ones((2, 3)), np.zeros((2, 3)), subject=subject))
    assert figure.get_suptitle() == f"first wrong quantity: q, shape (2, 3)\n{subject},\nfloat64"
