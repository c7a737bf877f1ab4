"""The same networks in PyTorch; gradients only from autograd."""

from reference import seed_network

__all__ = ["seed_network"]
