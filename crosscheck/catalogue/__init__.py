"""The catalogue of deliberately wrong derivations, kept apart from the real code."""
