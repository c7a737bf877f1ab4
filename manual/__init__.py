"""Hand-derived backpropagation in NumPy. Importing this package never imports torch."""

from manual import layers, seed_network
from netdesc.checks import InputError

__all__ = ["InputError", "layers", "seed_network"]
