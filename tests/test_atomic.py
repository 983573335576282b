"""Atomic writes: all or nothing, and folders with the usual permissions."""

import os
import stat

import pytest

from pynet_tf import atomic


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = atomic.write_text(tmp_path / "a.json", "old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


def test_directory_replaces_the_old_one_with_the_umask_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        (tmp_path / "model" / "stale").mkdir(parents=True)
        atomic.write_with(
            tmp_path / "model", lambda folder: (folder / "weights").write_text("new"), directory=True
        )
    finally:
        os.umask(umask)
    assert sorted(os.listdir(tmp_path / "model")) == ["weights"] and os.listdir(tmp_path) == ["model"]
    # mkdtemp's 0700 would hide a saved model from the other users of a shared run folder
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
