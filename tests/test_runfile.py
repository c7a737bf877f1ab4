"""The saved run format (crosscheck.runfile): runs built here with known values saved and read back bit for bit,
the JSON beside them, writes that fail leaving the folder as it was, and every bad run, path and damaged file
refused in one line."""

import json
import re
import zipfile

import numpy as np
import pytest
from run_files import npy_bytes, npz_bytes, same_bits, synthetic_run

from crosscheck import runfile
from netdesc import InputError


def _with_summary(run, **fields):
    summary = json.loads(str(run["summary"])) | fields
    return run | {"summary": np.array(json.dumps(summary))}


def _odd_run():
    """A run holding NaN, inf, -0.0, float32 filters, a cut-short epoch list and no stop."""
    run = synthetic_run(steps=5, epochs=2, bank=(2, 3, 2, 2))
    run["loss_manual"] = np.array([1.0, -0.0, np.nan, np.inf, -np.inf])
    run["max_rel_diff"] = np.array([0.0, -0.0, 5e-324, np.inf, np.nan])
    run["filters_manual"] = np.array(run["filters_manual"], np.float32)
    run["filters_manual"][0, 0, 0, 0] = np.nan
    run["filter_grad_manual"] = np.full((2, 3, 2, 2), -0.0)
    return run


def test_a_run_reloads_bit_for_bit_and_saves_again_the_same(tmp_path):
    run = _odd_run()
    first, beside = runfile.save_run(tmp_path / "a.npz", run)
    assert (first, beside) == (tmp_path / "a.npz", tmp_path / "a.json")
    loaded = runfile.load_run(first)
    assert loaded.keys() == run.keys() == runfile.RUN_KEYS.keys()
    assert all(same_bits(loaded[k], np.asarray(run[k])) for k in run)
    again, _ = runfile.save_run(tmp_path / "b.npz", loaded)
    reloaded = runfile.load_run(again)
    assert all(same_bits(reloaded[k], loaded[k]) for k in run)
    assert loaded["summary"].dtype.kind == "U" and loaded["summary"].shape == ()
    assert np.signbit(loaded["filter_grad_manual"]).all() and loaded["filters_manual"].dtype == np.float32


def test_the_json_beside_holds_the_summary_and_the_final_values(tmp_path):
    run = synthetic_run(steps=4, epochs=2, stopped_at=4, title="t")
    run["loss_manual"] = np.array([3.0, 2.0, 1.0, 0.5])
    run["loss_autograd"] = np.array([3.0, 2.0, 1.0, np.nan])
    run["max_rel_diff"] = np.array([0.0, 1e-16, 3e-9, 2e-16])
    run["test_accuracy_manual"] = np.array([0.25, 0.75])
    _, beside = runfile.save_run(tmp_path / "r.npz", run)
    document = json.loads(beside.read_text())
    assert document == {"title": "t", "dtype": "float64", "epochs": 2, "steps": 4, "stopped_at": 4, "run": "r.npz",
                        "rtol": 1e-10, "atol": 1e-12, "epochs_done": 2, "largest_rel_diff": 3e-9,
                        "loss_manual": 0.5, "loss_autograd": None,
                        "train_accuracy_manual": 0.95, "train_accuracy_autograd": 0.95,
                        "test_accuracy_manual": 0.75, "test_accuracy_autograd": pytest.approx(0.93)}


def test_a_run_cut_short_before_any_epoch_has_nulls_beside_it(tmp_path):
    run = synthetic_run(steps=0, epochs=0)
    _, beside = runfile.save_run(tmp_path / "r.npz", _with_summary(run, epochs=3))
    document = json.loads(beside.read_text())
    assert document["epochs_done"] == 0 and document["epochs"] == 3
    assert document["largest_rel_diff"] is document["loss_manual"] is document["test_accuracy_autograd"] is None


def test_a_failed_write_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    runfile.save_run(tmp_path / "r.npz", synthetic_run(steps=3, title="before"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}/r.npz: cannot write: No space left on device")):
        runfile.save_run(tmp_path / "r.npz", synthetic_run(steps=5, title="after"))
    with pytest.raises(InputError, match="new.npz: cannot write"):
        runfile.save_run(tmp_path / "new.npz", synthetic_run())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_failing_second_file_leaves_neither(tmp_path, monkeypatch):
    real = runfile._temporary

    def second_fails(target):
        if target.suffix == ".json":
            raise PermissionError(13, "Permission denied")
        return real(target)

    monkeypatch.setattr(runfile, "_temporary", second_fails)
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}/sub/r.json: cannot write: Permission denied")):
        runfile.save_run(tmp_path / "sub" / "r.npz", synthetic_run())
    assert list((tmp_path / "sub").iterdir()) == []


def test_an_error_that_is_not_the_disks_escapes_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        runfile.save_run(tmp_path / "r.npz", synthetic_run())
    assert list(tmp_path.iterdir()) == []


def test_a_saved_file_has_the_permissions_of_a_plain_open(tmp_path):
    path, _ = runfile.save_run(tmp_path / "r.npz", synthetic_run())
    (tmp_path / "plain").write_bytes(b"")
    assert path.stat().st_mode == (tmp_path / "plain").stat().st_mode


def _changed(**changes):
    run = synthetic_run(steps=4, epochs=2, classes=3)
    return {k: v for k, v in (run | changes).items() if v is not None}


# (id, run, the message after "arrays" / "arrays['key']")
BAD_RUNS = [
    ("not-a-mapping", [1, 2], "arrays: got list, needs a mapping of the run's keys to arrays"),
    ("missing-and-unknown", _changed(rtol=None, atol=None, extra=np.zeros(1)),
     "arrays: missing atol, rtol; unknown extra; needs exactly the keys of crosscheck.runfile.RUN_KEYS"),
    ("ragged", _changed(loss_manual=[[1.0], [1.0, 2.0]]), "arrays['loss_manual']: got list, needs an array"),
    ("loss-float32", _changed(loss_manual=np.zeros(4, np.float32)), "arrays['loss_manual']: got dtype float32, needs "
     "float64"),
    ("loss-2d", _changed(loss_manual=np.zeros((4, 1))), "arrays['loss_manual']: got shape (4, 1), needs 1-D "
     "(steps,)"),
    ("loss-lengths", _changed(max_rel_diff=np.zeros(3)), "arrays['max_rel_diff']: got shape (3,), needs (4,), one "
     "per step as loss_manual"),
    ("rtol-array", _changed(rtol=np.array([1e-10])), "arrays['rtol']: got shape (1,), needs a 0-d array (a scalar)"),
    ("rtol-zero", _changed(rtol=np.array(0.0)), "arrays['rtol']: got 0.0, needs a finite number > 0"),
    ("atol-negative", _changed(atol=np.array(-1.0)), "arrays['atol']: got -1.0, needs a finite number >= 0"),
    ("atol-nan", _changed(atol=np.array(np.nan)), "arrays['atol']: got nan, needs a finite number >= 0"),
    ("epoch-steps-float", _changed(epoch_steps=np.array([2.0, 4.0])), "arrays['epoch_steps']: got dtype float64, "
     "needs int64"),
    ("epoch-steps-2d", _changed(epoch_steps=np.zeros((2, 1), np.int64)), "arrays['epoch_steps']: got shape (2, 1), "
     "needs 1-D (epochs,)"),
    ("epoch-steps-decreasing", _changed(epoch_steps=np.array([4, 2])), "arrays['epoch_steps']: got [4, 2], needs "
     "non-decreasing step counts in [0, 4]"),
    ("epoch-steps-past-the-end", _changed(epoch_steps=np.array([2, 5])), "arrays['epoch_steps']: got [2, 5], needs "
     "non-decreasing step counts in [0, 4]"),
    ("accuracy-length", _changed(test_accuracy_manual=np.zeros(3)), "arrays['test_accuracy_manual']: got shape "
     "(3,), needs (2,), one per epoch as epoch_steps"),
    ("accuracy-percent", _changed(train_accuracy_autograd=np.array([50.0, 90.0])), "arrays['train_accuracy_autograd']"
     ": got values outside [0, 1], needs accuracies in [0, 1]"),
    ("accuracy-nan", _changed(train_accuracy_manual=np.array([np.nan, 0.5])), "arrays['train_accuracy_manual']: got "
     "values outside [0, 1], needs accuracies in [0, 1]"),
    ("filter-int", _changed(filters_manual=np.zeros((3, 3), int)), "arrays['filters_manual']: got dtype int64, needs "
     "float32 or float64"),
    ("filter-3d", _changed(filter_grad_autograd=np.zeros((1, 3, 3))), "arrays['filter_grad_autograd']: got shape "
     "(1, 3, 3), needs (KH, KW) or (C_out, C_in, KH, KW)"),
    ("confusion-float", _changed(confusion_manual=np.zeros((3, 3))), "arrays['confusion_manual']: got dtype float64, "
     "needs int64"),
    ("confusion-not-square", _changed(confusion_manual=np.zeros((3, 2), np.int64)), "arrays['confusion_manual']: got "
     "shape (3, 2), needs a square (C, C) matrix"),
    ("confusion-negative", _changed(confusion_autograd=-np.ones((3, 3), np.int64)), "arrays['confusion_autograd']: "
     "got negative counts, needs counts >= 0"),
    ("confusion-classes", _changed(confusion_autograd=np.zeros((2, 2), np.int64)), "arrays['confusion_autograd']: "
     "got shape (2, 2), needs (3, 3), as confusion_manual"),
    ("summary-bytes", _changed(summary=np.array(b"{}")), "arrays['summary']: got dtype |S2 shape (), needs a 0-d "
     "unicode array of JSON text"),
    ("summary-not-json", _changed(summary=np.array("{")), "arrays['summary']: not JSON: Expecting property name "
     "enclosed in double quotes: line 1 column 2 (char 1)"),
    ("summary-nan", _with_summary(_changed(), note=float("nan")), "arrays['summary']: not JSON: NaN is no finite "
     "number, and JSON holds no other"),
    ("summary-out-of-range", _changed(summary=np.array('{"note": 1e999}')), "arrays['summary']: not JSON: 1e999 is "
     "no finite number, and JSON holds no other"),
    ("summary-a-list", _changed(summary=np.array("[]")), "arrays['summary']: got list, needs a JSON object (a dict)"),
    ("summary-fields", _changed(summary=np.array('{"title": "t"}')), "arrays['summary']: got no dtype, epochs, "
     "steps, stopped_at, needs the fields title, dtype, epochs, steps, stopped_at"),
    ("summary-title", _with_summary(_changed(), title=3), "arrays['summary']: got title 3, needs title as text"),
    ("summary-steps", _with_summary(_changed(), steps=5), "arrays['summary']: got steps 5, needs 4, the length of "
     "the per-step arrays"),
    ("summary-steps-bool", _with_summary(synthetic_run(steps=1, epochs=1), steps=True), "arrays['summary']: got "
     "steps True, needs 1, the length of the per-step arrays"),
    ("summary-epochs", _with_summary(_changed(), epochs=1), "arrays['summary']: got epochs 1, needs an integer >= 2, "
     "the epochs finished"),
    ("summary-stopped-at", _with_summary(_changed(), stopped_at="end"), "arrays['summary']: got stopped_at 'end', "
     "needs null or a step in [1, 4]"),
    ("summary-stopped-at-0", _with_summary(_changed(), stopped_at=0), "arrays['summary']: got stopped_at 0, needs "
     "null or a step in [1, 4]"),
    ("summary-stopped-past-the-end", _with_summary(_changed(), stopped_at=5), "arrays['summary']: got stopped_at 5, "
     "needs null or a step in [1, 4]"),
]


@pytest.mark.parametrize(("run", "message"), [c[1:] for c in BAD_RUNS], ids=[c[0] for c in BAD_RUNS])
def test_a_bad_run_is_refused_in_one_line_and_nothing_is_written(run, message, tmp_path):
    with pytest.raises(InputError) as info:
        runfile.save_run(tmp_path / "r.npz", run)
    assert str(info.value) == message
    assert list(tmp_path.iterdir()) == []


def test_a_run_read_from_a_file_is_checked_with_the_files_name(tmp_path):
    path = tmp_path / "r.npz"
    np.savez(path, **_changed(rtol=np.array(0.0)))
    with pytest.raises(InputError, match=re.escape(f"{path}: rtol: got 0.0, needs a finite number > 0")):
        runfile.load_run(path)


@pytest.mark.parametrize(("name", "message"), [
    ("r", "path: got '{tmp}/r', needs a file name ending in .npz"),
    ("r.NPZ", "path: got '{tmp}/r.NPZ', needs a file name ending in .npz"),
    ("folder.npz", "{tmp}/folder.npz: got a directory, needs a file name ending in .npz"),
    ("file/r.npz", "{tmp}/file/r.npz: cannot write: a file stands in the way of its folder {tmp}/file"),
])
def test_a_path_that_cannot_hold_a_run_is_refused(name, message, tmp_path):
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError) as info:
        runfile.save_run(tmp_path / name, synthetic_run())
    assert str(info.value) == message.replace("{tmp}", str(tmp_path))


def test_a_damaged_archive_member_is_refused(tmp_path):
    path = tmp_path / "r.npz"
    np.savez(path, **synthetic_run())
    data = bytearray(path.read_bytes())
    at = data.index(b"\x93NUMPY") + 200  # inside the first member's array data: its CRC no longer matches
    data[at: at + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        runfile.load_run(path)
    assert str(info.value).startswith(f"{path}: not a saved run: a damaged archive (BadZipFile: Bad CRC-32 for file")


def test_a_header_that_claims_more_bytes_than_its_member_holds_is_refused_before_reading(tmp_path):
    path = tmp_path / "r.npz"
    with zipfile.ZipFile(path, "w") as archive:  # each member's CRC right, loss_manual's header wrong
        for key, value in synthetic_run(steps=3).items():
            member = npy_bytes(value)
            archive.writestr(f"{key}.npy", member.replace(b"(3,)", b"(9,)") if key == "loss_manual" else member)
    with pytest.raises(InputError) as info:
        runfile.load_run(path)
    assert str(info.value) == (f"{path}: not a saved run: a damaged archive (loss_manual.npy: its header says 72 "
                               "bytes, it holds 24)")


def test_a_run_too_large_to_be_one_is_refused_before_reading(tmp_path, monkeypatch):
    path, _ = runfile.save_run(tmp_path / "r.npz", synthetic_run())
    assert runfile.MAX_RUN_BYTES == 2**30
    monkeypatch.setattr(runfile, "MAX_RUN_BYTES", 1000)
    with pytest.raises(InputError, match=re.escape(f"{path}: not a saved run: its arrays take more than 1,000 bytes")):
        runfile.load_run(path)


def test_damaged_bytes_anywhere_give_one_line_or_a_checked_run(tmp_path):
    data = npz_bytes(**synthetic_run(steps=3, epochs=1, classes=2))
    rng = np.random.default_rng(0)
    path = tmp_path / "r.npz"
    damaged = [data[:n] for n in range(0, len(data), 37)]
    for _ in range(300):
        corrupt = bytearray(data)
        for at in rng.integers(len(data), size=3):
            corrupt[at] = rng.integers(256)
        damaged.append(bytes(corrupt))
    refused = 0
    for content in damaged:
        path.write_bytes(content)
        try:
            run = runfile.load_run(path)
        except InputError as err:
            assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
            refused += 1
        else:
            assert run.keys() == runfile.RUN_KEYS.keys()
    assert refused > len(damaged) // 2
