"""Comparison machinery and command line: hand-derived backprop (manual/) against autograd (reference/)."""

from crosscheck.compare import Comparison, assert_close, compare
from crosscheck.tolerances import TOLERANCES, tolerance_for

__all__ = ["TOLERANCES", "Comparison", "assert_close", "compare", "tolerance_for"]
