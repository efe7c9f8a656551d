"""Run directories (store/rundir.py): latest, best and the last periodic checkpoints written,
kept and pruned, with hard links or copies; the lock that keeps a second trainer out (in this
process, in another, and across a release that removes its file); stale temp files cleaned
under the lock; and resolve_checkpoint, which file a command reads given a file, a run
directory or nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from charrnn.errors import CheckpointError
from charrnn.store.container import load
from charrnn.store.rundir import RunDir, resolve_checkpoint

from .store_support import temp_files

REPO_ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- run directories


def weights(step: int) -> dict[str, np.ndarray]:
    return {"W": np.full((2, 2), step, dtype=np.float32)}


def step_of(path: str | None) -> int:
    arrays, meta = load(path)
    assert arrays["W"][0, 0] == meta["step"]
    return meta["step"]


def test_run_dir_keeps_last_three_and_tracks_best(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.latest_path() is None and run.best_path() is None
    losses = [3.0, 2.0, 2.5, 1.5, 1.7, None]
    best_so_far = float("inf")
    for step, loss in enumerate(losses, start=1):
        is_best = loss is not None and loss < best_so_far
        best_so_far = min(best_so_far, loss) if loss is not None else best_so_far
        written = run.write(weights(step * 100), {"step": step * 100}, step * 100, loss, is_best)
        assert os.path.basename(written) == (  # no validation loss, no val in the name
            f"step-{step * 100:07d}.ckpt" if loss is None else f"step-{step * 100:07d}-val-{loss:.4f}.ckpt"
        )
        assert step_of(run.latest_path()) == step * 100
    names = [os.path.basename(p) for p in run.periodic_paths()]
    assert names == [
        "step-0000400-val-1.5000.ckpt",
        "step-0000500-val-1.7000.ckpt",
        "step-0000600.ckpt",
    ]
    assert run.latest_path() == str(tmp_path / "run" / "latest.ckpt")
    assert run.best_path() == str(tmp_path / "run" / "best.ckpt")
    assert step_of(run.best_path()) == 400
    assert temp_files(tmp_path / "run") == []


def test_run_dir_custom_keep_and_best_fallback(tmp_path):
    run = RunDir(tmp_path / "run")
    for step in range(1, 5):
        run.write(weights(step), {"step": step}, step, float("nan"), is_best=False, keep=1)
    assert [os.path.basename(p) for p in run.periodic_paths()] == ["step-0000004.ckpt"]
    assert run.best_path() == run.latest_path()
    assert step_of(run.best_path()) == 4


def test_run_dir_keeps_the_checkpoint_just_written(tmp_path):
    run = RunDir(tmp_path / "run")
    for step in (10, 20, 30):
        run.write(weights(step), {"step": step}, step, 1.0, is_best=False)
    resumed = run.write(weights(5), {"step": 5}, 5, 1.0, is_best=False)
    assert os.path.exists(resumed)
    assert len(run.periodic_paths()) == 3


def test_run_dir_latest_survives_pruning_of_its_source(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write(weights(1), {"step": 1}, 1, 1.0, is_best=True, keep=1)
    run.write(weights(2), {"step": 2}, 2, 2.0, is_best=False, keep=1)
    assert not (tmp_path / "run" / "step-0000001-val-1.0000.ckpt").exists()
    assert step_of(run.best_path()) == 1 and step_of(run.latest_path()) == 2


def test_run_dir_falls_back_to_copy_without_hard_links(tmp_path, monkeypatch):
    def no_links(*args):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    run = RunDir(tmp_path / "run")
    run.write(weights(7), {"step": 7}, 7, 0.5, is_best=True)
    assert step_of(run.latest_path()) == 7 and step_of(run.best_path()) == 7
    assert temp_files(tmp_path / "run") == []


@pytest.mark.parametrize("bad", [{"step": -1}, {"keep": 0}, {"step": 1.5}])
def test_run_dir_rejects_bad_arguments(tmp_path, bad):
    args = {"step": 1, "keep": 3, **bad}
    with pytest.raises((ValueError, TypeError)):
        RunDir(tmp_path / "run").write(weights(1), {}, args["step"], 1.0, False, keep=args["keep"])


def test_lock_refuses_a_second_holder_in_process(tmp_path):
    path = tmp_path / "run"
    with RunDir(path).lock() as run:
        assert isinstance(run, RunDir)
        assert (path / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(CheckpointError) as info:
            with RunDir(path).lock():
                pass
        assert str(info.value) == (
            f"{path}: another charrnn train is already writing this run "
            f"(lock held by pid {os.getpid()})"
        )
    with RunDir(path).lock():  # released on exit
        pass


def test_lock_is_held_by_another_process_until_it_dies(tmp_path):
    path = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import sys, time
        from charrnn.store.rundir import RunDir
        with RunDir({str(path)!r}).lock():
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout.readline().strip() == b"locked"
        with pytest.raises(CheckpointError) as info:
            with RunDir(path).lock():
                pass
        assert f"(lock held by pid {child.pid})" in str(info.value)
    finally:
        child.kill()
        child.wait()
    with RunDir(path).lock():
        pass


def test_clean_stale_temps_needs_the_lock(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    stale = [path / ".tmp-latest.ckpt-abc.ckpt.part", path / ".tmp-x.ckpt.part"]
    keep = [path / "notes.part", path / "step-0000001-val-nan.ckpt", path / ".tmp-other"]
    for p in stale + keep:
        p.write_bytes(b"partial")
    run = RunDir(path)
    with pytest.raises(RuntimeError):
        run.clean_stale_temps()
    with run.lock():
        assert run.clean_stale_temps() == sorted(str(p) for p in stale)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)


# ---------------------------------------------------------------- resolve_checkpoint


def make_run(root: Path, name: str, best: bool, mtime: float) -> RunDir:
    run = RunDir(root / name)
    run.write(weights(1), {"step": 1, "run": name}, 1, 1.0, is_best=best)
    os.utime(run.latest_path(), (mtime, mtime))
    return run


def test_resolve_explicit_file_and_directories(tmp_path):
    run = make_run(tmp_path, "a", best=True, mtime=time.time())
    file = run.periodic_paths()[0]
    assert resolve_checkpoint(file, str(tmp_path)) == file
    assert resolve_checkpoint(run.path, str(tmp_path)) == os.path.join(run.path, "best.ckpt")
    only_latest = make_run(tmp_path, "b", best=False, mtime=time.time())
    assert resolve_checkpoint(only_latest.path, "elsewhere") == only_latest.latest_path()


def test_resolve_explicit_errors(tmp_path):
    missing = tmp_path / "missing.ckpt"
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(str(missing), str(tmp_path))
    assert str(info.value) == f"{missing}: no such checkpoint"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(str(empty), str(tmp_path))
    assert str(info.value) == f"{empty}: no best.ckpt or latest.ckpt in this run directory"


def test_resolve_none_picks_most_recent_run(tmp_path):
    now = time.time()
    make_run(tmp_path, "old", best=True, mtime=now - 100)
    newer = make_run(tmp_path, "new", best=False, mtime=now)
    (tmp_path / "stray").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert resolve_checkpoint(None, str(tmp_path)) == newer.latest_path()
    newest = make_run(tmp_path, "newest", best=True, mtime=now + 100)
    assert resolve_checkpoint(None, str(tmp_path)) == os.path.join(newest.path, "best.ckpt")


@pytest.mark.parametrize("suffix", ["", "/"])
def test_resolve_none_with_nothing(tmp_path, suffix):
    (tmp_path / "empty-run").mkdir()
    for root in (str(tmp_path), str(tmp_path / "does-not-exist")):
        with pytest.raises(CheckpointError) as info:
            resolve_checkpoint(None, root + suffix)
        assert str(info.value) == (
            f"no checkpoint found under {root}/; train one first: charrnn train CORPUS"
        )


def test_a_lock_taken_on_a_file_its_releaser_removed_is_taken_again(tmp_path):
    """B opens .lock, A (holding it) removes it and its empty directory, B's flock then wins a
    file no longer there: B must retry, or a third trainer could lock a new file beside it."""
    run_a, run_b = RunDir(tmp_path / "r"), RunDir(tmp_path / "r")
    real_flock, raced = run_b._flock, []

    def flock_after_a_releases(fd):
        if not raced:
            raced.append(True)
            with run_a.lock():
                pass
            assert not (tmp_path / "r").exists()  # A removed the lock file and the directory
            return real_flock(fd)  # wins, on the unlinked file
        return real_flock(fd)

    (tmp_path / "r").mkdir()
    run_b._flock = flock_after_a_releases
    with run_b.lock():
        assert raced and (tmp_path / "r" / ".lock").exists()
        with pytest.raises(CheckpointError, match="another charrnn train is already writing this run"):
            with RunDir(tmp_path / "r").lock():
                pass
