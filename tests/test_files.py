"""Writes never follow a symbolic link out of the run folder (issue 22, item 1): the temporary
file of an atomic write, the final file, the lock, the log and a subfolder, each planted as a
link to a file or folder outside; the outside target must stay byte-identical."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bgresample import files
from bgresample.cli import main
from bgresample.config import default_config
from bgresample.files import UnsafePathError, atomic_write_text
from bgresample.runfolder import prepare_run_folder, release_locks, setup_logging


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file outside every run folder that no command may change."""
    path = tmp_path / "elsewhere" / "victim"
    path.parent.mkdir()
    path.write_text("precious, not bgresample's\n")
    return path


@pytest.fixture
def run(tmp_path) -> Path:
    """A run folder made by `prepare_run_folder` (unlocked again)."""
    out = tmp_path / "run"
    prepare_run_folder(out, default_config(), "select")
    release_locks()
    return out


def _one_line(e: pytest.ExceptionInfo, path: Path) -> None:
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "symbolic link" in msg, msg


def test_a_temporary_file_planted_as_a_link_is_refused(run, victim):
    before = _sha(victim)
    tmp = run / f".meta.json.{os.getpid()}.tmp"  # the temporary name this process would use
    tmp.symlink_to(victim)
    (run / ".meta.json.tmp").symlink_to(victim)  # the name earlier versions used: not opened
    with pytest.raises(UnsafePathError) as e:
        prepare_run_folder(run, default_config(), "select", resume=True)
    release_locks()
    _one_line(e, tmp)
    assert _sha(victim) == before and not (run / "meta.json").is_symlink()


def test_a_final_file_that_is_a_link_is_refused(run, victim):
    before = _sha(victim)
    (run / "results.json").symlink_to(victim)
    files.confine(run)
    try:
        with pytest.raises(UnsafePathError) as e:
            atomic_write_text(run / "results.json", "{}")
    finally:
        files.unconfine(run)
    _one_line(e, run / "results.json")
    assert _sha(victim) == before and (run / "results.json").is_symlink()


def test_meta_json_that_is_a_link_is_refused(run, victim):
    victim.write_bytes((run / "meta.json").read_bytes())  # looks like a run's meta.json
    before = _sha(victim)
    (run / "meta.json").unlink()
    (run / "meta.json").symlink_to(victim)
    with pytest.raises(UnsafePathError) as e:
        prepare_run_folder(run, default_config(), "select", resume=True)
    release_locks()
    _one_line(e, run / "meta.json")
    assert _sha(victim) == before


def test_a_lock_file_that_is_a_link_is_refused(run, victim):
    before = _sha(victim)
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(victim)
    with pytest.raises(UnsafePathError) as e:
        prepare_run_folder(run, default_config(), "select", resume=True)
    _one_line(e, run / ".lock")
    assert _sha(victim) == before


def test_a_log_file_that_is_a_link_is_refused(run, victim):
    before = _sha(victim)
    (run / "log.txt").symlink_to(victim)
    with pytest.raises(UnsafePathError) as e:
        setup_logging(run, quiet=True)
    _one_line(e, run / "log.txt")
    assert _sha(victim) == before


def test_a_subfolder_that_is_a_link_is_refused(run, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "seed_0").symlink_to(outside)
    prepare_run_folder(run, default_config(), "select", resume=True)  # confined while held
    try:
        with pytest.raises(UnsafePathError) as e:
            atomic_write_text(run / "seed_0" / "results.json", "{}")
    finally:
        release_locks()
    _one_line(e, run / "seed_0")
    assert list(outside.iterdir()) == []
    atomic_write_text(run / "seed_0" / "results.json", "{}")  # released: not a run any more


def test_a_run_folder_reached_through_a_link_is_fine(tmp_path):
    real = tmp_path / "scratch"
    real.mkdir()
    (tmp_path / "runs").symlink_to(real)
    out = prepare_run_folder(tmp_path / "runs" / "a", default_config(), "select")
    atomic_write_text(out / "x.json", "{}")
    release_locks()
    assert (real / "a" / "x.json").read_text() == "{}"


def test_select_overwrite_with_planted_links_changes_nothing_outside(
    tmp_path, tiny, victim, capsys
):
    """The reported case: links at `.meta.json.tmp` and `log.txt` of a run, then `select
    --overwrite`; and a link at `.lock`, which is refused in one line."""
    out = tmp_path / "sel"
    args = ["select", "--method", "random", "--out", str(out), *tiny]
    assert main(args) == 0
    before = _sha(victim)
    (out / ".meta.json.tmp").symlink_to(victim)
    (out / "log.txt").unlink()
    (out / "log.txt").symlink_to(victim)
    assert main([*args, "--overwrite"]) == 0
    assert _sha(victim) == before
    for name in ("meta.json", "log.txt", "config.yaml", "subset_random.csv"):
        assert not (out / name).is_symlink() and (out / name).is_file(), name
    capsys.readouterr()
    (out / ".lock").unlink(missing_ok=True)
    (out / ".lock").symlink_to(victim)
    assert main([*args, "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{out / '.lock'}" in err and "symbolic link" in err
    assert _sha(victim) == before


def test_a_tensorboard_folder_that_is_a_link_is_refused(run, tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    from bgresample import scalars

    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "tensorboard").symlink_to(outside, target_is_directory=True)
    prepare_run_folder(run, default_config(), "select", resume=True)
    try:
        with pytest.raises(UnsafePathError) as e:
            scalars.configure(run)
    finally:
        release_locks()
    _one_line(e, run / "tensorboard")
    assert list(outside.iterdir()) == []
