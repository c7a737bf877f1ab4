# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Backpropagation in a CNN, by hand and by autograd
#
# The slides' network, on real handwritten digits:
#
#     X → Z1 = conv(X, f) → H1 = sigmoid(Z1) → Z2 = Wᵀ·H1 + b → O = sigmoid(Z2),   E = (Y − O)² / 2
#
# We compute every chain-rule factor by hand (`manual/seed_network.py`, NumPy only), ask PyTorch's autograd for
# the same numbers (`reference/seed_network.py`, which never writes a derivative), and see them agree. Then we
# train both on the digits, side by side, and finish with an exercise: you write dE/df, the harness checks it.
#
# This file is a notebook in jupytext's percent format: open it with Jupyter (`pip install jupytext`, then
# "Open as notebook"), or run `jupytext --to notebook docs/teaching.py`. The test suite executes it.

# %%
import io

import numpy as np
from IPython.display import Image, display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import netdesc.seed
from crosscheck import plots, render
from crosscheck import train as training
from crosscheck.check import check, overrides
from crosscheck.compare import compare
from crosscheck.diagnose import diagnose
from crosscheck.subjects import SeedCase, SeedSubject
from manual import seed_network as manual
from reference import seed_network as reference

np.set_printoptions(precision=4, suppress=True)


def show(figure):
    """Draw a matplotlib figure into the notebook as a PNG."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    display(Image(buffer.getvalue()))


# %% [markdown]
# ## Four handwritten digits
#
# scikit-learn ships 1,797 grey 8×8 images of digits (no download). We take four training images and ask one
# question of each: is the digit odd? The target Y is 1 for an odd digit, 0 for an even one.

# %%
(images, labels), _ = training.digits(seed=0)
X = images[:4]                                   # (N, H, W) = (4, 8, 8), values in [0, 1]
Y = (labels[:4] % 2)[:, None].astype(float)      # (N, n_out) = (4, 1)
params = netdesc.seed.init_params((8, 8), (3, 3), n_out=1, seed=1)   # f (3, 3), W (36, 1), b (1,)

figure = Figure(figsize=(8, 2.4))
for ax, image, label in zip(figure.subplots(1, 4), X, labels[:4], strict=True):
    ax.imshow(image, cmap="gray_r")
    ax.set(title=f"digit {label}: Y = {label % 2}", xticks=[], yticks=[])
show(figure)

# %% [markdown]
# ## The forward pass, both ways
#
# `manual.forward` is one line per equation of the slides. `reference.run` builds the same network from torch
# modules (a 1-channel `Conv2d` without bias, `Linear`) with the same parameters, and lets autograd do the rest.

# %%
values = manual.forward(X, params, Y, reduction="mean")
ref_values, ref_grads = reference.run(X, params, Y, reduction="mean")
for name in ("Z1", "H1", "Z2", "O", "E"):
    c = compare(name, values[name], ref_values[name])
    print(f"{name:3} shape {str(c.shape):12} largest difference {c.max_abs_error:.1e}  agree: {c.passed}")
print("O by hand:    ", values["O"].ravel())
print("O by autograd:", ref_values["O"].ravel())

# %% [markdown]
# ## The chain rule, one factor at a time
#
# Each factor of the slides is a small function in `manual/seed_network.py`, named as the slides name it:
# `dE_dO` reads dE/dO. Here they are called one by one, exactly as `manual.backward` calls them, and each is put
# next to autograd's value of the same derivative.

# %%
O, H1, Z1, W = values["O"], values["H1"], values["Z1"], params["W"]
dE_dO = manual.dE_dO(O, Y, n=len(X))              # dE/dO = (O - Y) / N under the mean
dO_dZ2 = manual.dO_dZ2(O)                         # dO/dZ2 = O (1 - O)
dE_dZ2 = manual.dE_dZ2(dE_dO, dO_dZ2)             # dE/dZ2 = dE/dO * dO/dZ2
dE_dW = manual.dE_dW(dE_dZ2, manual.dZ2_dW(H1))   # dE/dW = H1^T . dE/dZ2
dE_dH1 = manual.dE_dH1(dE_dZ2, manual.dZ2_dH1(W)) # dE/dH1 = dE/dZ2 . W^T
dH1_dZ1 = manual.dH1_dZ1(H1, Z1)                  # dH1/dZ1 = H1 (1 - H1)
dE_dZ1 = manual.dE_dZ1(dE_dH1, dH1_dZ1)           # dE/dZ1 = dE/dH1 * dH1/dZ1
dE_df = manual.dE_df(X, dE_dZ1)                   # dE/df = conv(X, dE/dZ1)

for name, mine in [("dE_dO", dE_dO), ("dE_dZ2", dE_dZ2), ("dE_dW", dE_dW), ("dE_dH1", dE_dH1),
                   ("dE_dZ1", dE_dZ1), ("dE_df", dE_df)]:
    c = compare(name, mine, ref_grads[name])
    print(f"{name:7} largest difference {c.max_abs_error:.1e}  agree: {c.passed}")
print("dE/df by hand:\n", dE_df)
print("dE/df by autograd:\n", ref_grads["dE_df"])

# %% [markdown]
# ## Every quantity at once, as `crosscheck` prints it
#
# The checker compares the forward values, every factor (the local ones against Jacobians from `torch.func`),
# every gradient, the parameters after one SGD step and a 20-step training run on this batch.

# %%
case = SeedCase(input_shape=(8, 8), kernel_shape=(3, 3), n_out=1, batch=4, seed=0, dtype="float64",
                reduction="mean", lr=2.0, steps=20)
result = check(SeedSubject(case, data=(X, Y, params)))
print(render.table(render.seed_header(SeedSubject(case, data=(X, Y, params))), result))
assert result.passed

# %% [markdown]
# ## Training on the digits, both ways
#
# `crosscheck train` trains the network twice, by hand and by torch, from the same parameters on the same
# mini-batches of 32 images, and compares the loss and every parameter after every step. Five epochs:

# %%
run = training.train(training.Slides(n_out=1), epochs=5)
print(render.training_text(run))
assert run.passed
show(plots.training_figure(run.saved()))

# %% [markdown]
# The two curves lie on each other: the manual side is the broad pale band, autograd the dashed line through it.
# How close are they? The largest relative difference of the loss and the parameters after each step, against
# the tolerance:

# %%
show(plots.divergence_figure(run.saved()))

# %% [markdown]
# And the filter gradient dE/df of the last step, by hand, by autograd, and their difference (all but zero):

# %%
show(plots.filter_gradient_figure(run.saved()))

# %% [markdown]
# ## Exercise: write dE/df yourself
#
# dE/df[p, q] = Σ over n, i, j of dE/dZ1[n, i, j] · X[n, i+p, j+q]: every 3×3 patch of X, weighted by dE/dZ1
# where the patch's corner lands, summed over the batch. Below is a first attempt that convolves instead of
# correlating (the kernel comes out flipped). The harness swaps it into the slides' backward by name, checks
# every quantity and diagnoses the first wrong one.

# %%
def my_dE_df(X, dE_dZ1):
    N, OH, OW = dE_dZ1.shape
    KH, KW = X.shape[1] - OH + 1, X.shape[2] - OW + 1
    grad = np.zeros((KH, KW))
    for p in range(KH):
        for q in range(KW):
            grad[p, q] = (dE_dZ1 * X[:, p:p + OH, q:q + OW]).sum()
    return grad[::-1, ::-1]  # <- the mistake: a true convolution flips the kernel


attempt = overrides(backward={"dE_df": my_dE_df}, name="my dE/df")
diagnosis = diagnose(SeedSubject(case, attempt, data=(X, Y, params)))
print(render.diagnosis_text(diagnosis))
assert diagnosis.quantity == "dE/df" and diagnosis.classification.kind == "kernel-flipped"
show(plots.diagnosis_figure(diagnosis))

# %% [markdown]
# The diagnosis finds dE/df to be the first wrong quantity, sees the flipped kernel, and finite differences side
# with autograd. Now fix it: delete the flip, run the cell again, and every quantity agrees.

# %%
def my_dE_df(X, dE_dZ1):
    N, OH, OW = dE_dZ1.shape
    KH, KW = X.shape[1] - OH + 1, X.shape[2] - OW + 1
    grad = np.zeros((KH, KW))
    for p in range(KH):
        for q in range(KW):
            grad[p, q] = (dE_dZ1 * X[:, p:p + OH, q:q + OW]).sum()
    return grad


result = check(SeedSubject(case, overrides(backward={"dE_df": my_dE_df}, name="my dE/df"), data=(X, Y, params)))
print(f"{len(result.rows)} quantities, all agree: {result.passed}")
assert result.passed
