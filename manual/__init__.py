"""Hand-derived backpropagation in NumPy. Importing this package never imports torch."""

from manual import kernels, seed_network
from netdesc.checks import InputError

__all__ = ["InputError", "kernels", "seed_network"]
