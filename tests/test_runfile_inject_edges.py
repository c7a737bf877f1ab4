"""Edges of reading a saved run (crosscheck.runfile) and of --inject on a described network (crosscheck.check.inject)
that other tests leave open: members written in the .npy format's versions 2.0 and 3.0 load like version 1.0's, an
unknown version is named; a run whose arrays take exactly MAX_RUN_BYTES loads, one byte more is refused; a zip
directory that zipfile refuses with an error other than BadZipFile is reported with that error's own type and text; a
name that only looks like a layer index after its leading characters is looked up in the catalogue; inject names the
option it was given."""

import io
import zipfile

import numpy as np
import pytest
from run_files import npz_bytes, same_bits, synthetic_run

from crosscheck import runfile
from crosscheck.catalogue import catalogue
from crosscheck.check import inject
from netdesc import InputError
from netdesc.description import load_spec

NAMES = ", ".join(entry.name for entry in catalogue())  # the catalogue's names, listed where a name is not one


@pytest.mark.parametrize("version", [(2, 0), (3, 0)], ids=["2.0", "3.0"])
def test_members_in_the_npy_format_versions_2_and_3_load_like_version_1(tmp_path, version):
    """np.save writes version 2.0 where a header outgrows version 1.0's 65535 bytes, 3.0 where a structured dtype's
    field names need UTF-8; np.load reads all three."""
    run = synthetic_run(steps=4, epochs=2, classes=3)
    path = tmp_path / "r.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in run.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(value), version=version, allow_pickle=False)
            assert member.getvalue()[6:8] == bytes(version)  # the format's major and minor version bytes
            archive.writestr(f"{key}.npy", member.getvalue())
    assert np.load(path).keys() == run.keys()
    loaded = runfile.load_run(path)
    assert loaded.keys() == run.keys()
    assert all(same_bits(loaded[key], np.asarray(run[key])) for key in run)


def test_a_member_in_an_npy_format_version_numpy_does_not_know_is_named(tmp_path):
    """Version 4.0 does not exist (np.load refuses it too): the line names the member and its version."""
    run = synthetic_run(steps=4, epochs=2, classes=3)
    path = tmp_path / "r.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in run.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            data = bytearray(member.getvalue())
            if key == "rtol":
                data[6:8] = b"\x04\x00"
            archive.writestr(f"{key}.npy", bytes(data))
    with pytest.raises(ValueError):
        np.load(path)["rtol"]
    with pytest.raises(InputError) as info:
        runfile.load_run(path)
    assert str(info.value) == f"{path}: not a saved run: rtol.npy is in .npy format version 4.0, needs 1.0, 2.0 or 3.0"


def test_a_run_taking_exactly_max_run_bytes_loads_and_one_byte_more_is_refused(tmp_path, monkeypatch):
    """MAX_RUN_BYTES is what a run's arrays may take in all: a run at the limit is within it."""
    path, _ = runfile.save_run(tmp_path / "r.npz", synthetic_run(steps=5, epochs=1, classes=2))
    with zipfile.ZipFile(path) as archive:
        size = sum(info.file_size for info in archive.infolist())
    monkeypatch.setattr(runfile, "MAX_RUN_BYTES", size)
    assert runfile.load_run(path).keys() == runfile.RUN_KEYS.keys()
    monkeypatch.setattr(runfile, "MAX_RUN_BYTES", size - 1)
    with pytest.raises(InputError) as info:
        runfile.load_run(path)
    assert str(info.value) == f"{path}: not a saved run: its arrays take more than {size - 1:,} bytes"


def test_a_zip_directory_refused_with_another_error_is_reported_with_that_error(tmp_path):
    """A central directory entry asking for zip version 9.9 (above what zipfile extracts): zipfile raises
    NotImplementedError("zip file version 9.9") while opening the archive; the line names it."""
    data = bytearray(npz_bytes(**synthetic_run(steps=3, epochs=1, classes=2)))
    entry = data.index(b"PK\x01\x02")  # the first central directory entry; "version needed to extract" at +6
    data[entry + 6: entry + 8] = (99).to_bytes(2, "little")
    path = tmp_path / "r.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        runfile.load_run(path)
    assert str(info.value) == f"{path}: not a saved run: a damaged archive (NotImplementedError: zip file version 9.9)"


def test_a_name_that_is_not_a_layer_index_is_looked_up_in_the_catalogue():
    """Only a bare integer (a sign allowed) means scaled@LAYER: "X1" is a name, and no entry has it."""
    spec = load_spec("examples/lenet5.toml")
    for name in ("X1", "X-1", "-X1"):
        with pytest.raises(InputError) as info:
            inject(name, spec)
        assert str(info.value) == f"--inject: got {name!r}, needs one of {NAMES}"
    assert inject("1", spec).name == "scaled@1"


def test_inject_names_the_option_it_was_given():
    spec = load_spec("examples/lenet5.toml")
    with pytest.raises(InputError) as info:
        inject("no-such-mistake", spec, option="--wrong")
    assert str(info.value) == f"--wrong: got 'no-such-mistake', needs one of {NAMES}"
