"""Edges of the diagnosis and of the hypotheses it tests, pinned where a mutation run left them open: a hypothesis
that does not apply (a kernel flip of a gradient with fewer than two axes, the padding row of an embedding without
one) gives no pair at all, not a pair with nothing to compare; and a diagnosis where every quantity agrees still
names the user's module that was injected, both on the Diagnosis and in its JSON form."""

import numpy as np

from crosscheck.check import module_subject
from crosscheck.diagnose import diagnose
from crosscheck.hypotheses import GENERIC, layer_hypotheses
from netdesc.description import parse_spec


def test_a_kernel_flip_of_a_gradient_with_fewer_than_two_axes_gives_no_pair():
    """pairs(m, a) -> float64 arrays; where a has no two kernel axes to reverse the hypothesis does not apply: []."""
    [flipped] = [h for h in GENERIC if h.kind == "kernel-flipped"]
    m, a = np.array([1.0, -2.0, 3.0]), np.array([3.0, -2.0, 1.0])
    assert list(flipped.pairs(m, a)) == []
    assert list(flipped.pairs(np.array(2.0), np.array(2.0))) == []
    [(actual, expected)] = flipped.pairs(np.eye(2), np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(expected, [[4.0, 3.0], [2.0, 1.0]])


def test_an_embedding_without_a_padding_index_has_no_padding_row_pair():
    """The padding-index hypothesis (the padding row given its positions' gradients) has no pair without a
    padding_idx; the assigned-rows hypothesis still has its one pair."""
    spec = parse_spec({"input_shape": [3], "batch_size": 2, "loss": {"type": "mse"},
                       "layers": [{"type": "embedding", "num_embeddings": 4, "embedding_dim": 2}]})
    indices = np.array([[0, 1, 1], [3, 2, 0]])
    up = np.arange(12, dtype=np.float64).reshape(2, 3, 2)
    params = {"0.weight": np.zeros((4, 2))}
    assigned, padding = layer_hypotheses(spec.layers[0], "weight", indices, params, up)
    assert (assigned.kind, padding.kind) == ("assigned", "padding-index")
    m = np.zeros((4, 2))
    assert list(padding.pairs(m, m)) == []
    [(_, rows)] = assigned.pairs(m, m)
    # rows assigned in order: index 1 keeps position 2's row (4, 5), index 0 position 5's (10, 11)
    np.testing.assert_array_equal(rows, [[10.0, 11.0], [4.0, 5.0], [8.0, 9.0], [6.0, 7.0]])


def test_a_diagnosis_where_everything_agrees_still_names_the_injected_module(tmp_path):
    """A user's module overriding dE/dO with manual.seed_network's own (correct) equation: nothing differs, and the
    diagnosis names the module as injected, "<path> (a user's module)" as a check's Result does."""
    path = tmp_path / "same_as_manual.py"
    path.write_text("from manual.seed_network import dE_dO\nLAYER_BACKWARD = {'dE_dO': dE_dO}\n")
    d = diagnose(module_subject(path, seed=1))
    assert not d.wrong and d.quantity is None
    assert d.injected == f"{path} (a user's module)"
    assert d.as_dict()["injected"] == f"{path} (a user's module)"
