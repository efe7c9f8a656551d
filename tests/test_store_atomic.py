"""Atomic writes (store/atomic.py, through container.save): a save that fails (no space left at
os.replace or os.fsync) or is interrupted leaves the previous file untouched and no temp file
behind; the temp file is a hidden .tmp-*.ckpt.part beside its target. Real kills at every step
of a save, and real write errors, are tests/test_cli_faults.py's."""

from __future__ import annotations

import os

import numpy as np
import pytest

from charrnn.errors import CheckpointError
from charrnn.store.container import load, save

from .store_support import temp_files


@pytest.mark.parametrize("target", ["replace", "fsync"])
def test_failed_save_leaves_old_file_untouched(tmp_path, monkeypatch, target):
    path = tmp_path / "m.ckpt"
    save(path, {"x": np.arange(5.0)}, {"v": 1})
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, target, fail)
    with pytest.raises(CheckpointError) as info:
        save(path, {"x": np.arange(500.0)}, {"v": 2})
    monkeypatch.undo()
    assert str(info.value) == f"cannot write checkpoint {path}: No space left on device"
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []
    assert load(path)[1] == {"v": 1}


def test_interrupted_save_removes_temp_and_propagates(tmp_path, monkeypatch):
    path = tmp_path / "m.ckpt"
    save(path, {"x": np.arange(5.0)}, {"v": 1})
    before = path.read_bytes()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save(path, {"x": np.arange(500.0)}, {"v": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_temp_file_naming(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(src), os.path.basename(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    save(tmp_path / "m.ckpt", {}, {})
    (directory, name), = seen
    assert directory == str(tmp_path)
    assert name.startswith(".tmp-") and name.endswith(".ckpt.part")


def test_save_into_missing_directory(tmp_path):
    path = tmp_path / "missing" / "m.ckpt"
    with pytest.raises(CheckpointError) as info:
        save(path, {}, {})
    assert str(info.value) == f"cannot write checkpoint {path}: No such file or directory"
