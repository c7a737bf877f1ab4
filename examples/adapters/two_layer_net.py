"""A two-layer network in the course-assignment style: params in a dict, loss(X, y) -> (loss, grads)."""

import numpy as np


class TwoLayerNet:
    """affine (W1 (D, H), b1) - ReLU - affine (W2 (H, C), b2) - softmax cross-entropy, mean over the batch."""

    def __init__(self, D=6, H=5, C=4, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W1": rng.standard_normal((D, H)) * 0.5, "b1": rng.standard_normal(H) * 0.1,
                       "W2": rng.standard_normal((H, C)) * 0.5, "b2": rng.standard_normal(C) * 0.1}

    def loss(self, X, y):
        p = self.params
        h = np.maximum(0, X @ p["W1"] + p["b1"])
        scores = h @ p["W2"] + p["b2"]
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        N = X.shape[0]
        loss = -log_probs[np.arange(N), y].mean()
        dscores = np.exp(log_probs)
        dscores[np.arange(N), y] -= 1
        dscores /= N
        dh = (dscores @ p["W2"].T) * (h > 0)
        grads = {"W2": h.T @ dscores, "b2": dscores.sum(axis=0), "W1": X.T @ dh, "b1": dh.sum(axis=0)}
        return loss, grads
