"""Run folders under faults (issue 16): --resume with other settings, two commands on one
folder, --out on a folder that is not a run, failed report writes, Ctrl-C."""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bgresample import cli, commands, files
from bgresample.cli import main
from bgresample.config import default_config
from bgresample.errors import UserError
from bgresample.files import UnsafePathError
from bgresample.runfolder import check_resume, lock_run_folder, setup_logging

SMALL = ["--set", "run.seeds=1", "--set", "run.variants=[none, full]"]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (the lock aside) and its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny) -> tuple[Path, list[str]]:
    """A finished one-seed `run --quick` (device auto) and the arguments that made it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    auto = list(tiny)
    del auto[auto.index("--device") : auto.index("--device") + 2]
    args = ["run", "--quick", *auto, *SMALL]
    assert main([*args, "--out", str(out)]) == 0
    return out, args


@pytest.fixture
def run_copy(finished, tmp_path) -> tuple[Path, list[str]]:
    src, args = finished
    out = tmp_path / "run"
    shutil.copytree(src, out)
    return out, args


# -- 1. --resume with other settings ------------------------------------------------------------


def test_resume_with_other_settings_is_refused_and_changes_nothing(run_copy, capsys):
    out, args = run_copy
    before = _files(out)
    assert main([*args, "--out", str(out), "--resume", "--set", "select.gamma=0.5"]) == 2
    err = _err(capsys)
    assert "select.gamma: 0.1 -> 0.5" in err and "--overwrite" in err and "--out" in err
    assert _files(out) == before


def test_resume_refusal_lists_five_changes_then_a_count(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(default_config().to_dict()))
    cfg = default_config()
    cfg.seed, cfg.select.gamma, cfg.resample.eps = 3, 0.5, 0.25
    cfg.pretrain.lr, cfg.finetune.lr, cfg.finetune.epochs, cfg.model.name = 1.0, 1.0, 2, "resnet18"
    cfg.run.seeds = 1  # fewer seeds: refused
    with pytest.raises(UserError) as e:
        check_resume(tmp_path, cfg)
    msg = str(e.value)
    assert "seed: 0 -> 3" in msg and "and 3 more" in msg and msg.count("->") == 5
    cfg = default_config()
    cfg.device, cfg.data.workers, cfg.data.root, cfg.accel.compile = "cpu", 0, "/elsewhere", True
    assert check_resume(tmp_path, cfg) is False  # speed and location options may change
    cfg.run.seeds += 2
    assert check_resume(tmp_path, cfg) is True  # more seeds: config.yaml is rewritten


def test_resume_with_speed_options_and_more_seeds_continues(run_copy, capsys):
    out, args = run_copy
    config, meta = (out / "config.yaml").read_bytes(), json.loads((out / "meta.json").read_text())
    results = json.loads((out / "results.json").read_text())
    same = [*args, "--out", str(out), "--resume", "--device", "cpu", "--set", "data.workers=0"]
    assert main(same) == 0
    assert (out / "config.yaml").read_bytes() == config  # not rewritten
    again = json.loads((out / "results.json").read_text())
    assert again["variants"] == results["variants"]
    assert main([*same, "--seeds", "2"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["run"]["seeds"] == 2
    grown = json.loads((out / "results.json").read_text())
    assert grown["seeds"] == [0, 1]
    now = json.loads((out / "meta.json").read_text())
    assert {k: now[k] for k in meta} == meta  # the original content is kept
    assert len(now["resumed"]) == 2 and now["resumed"][0]["command"] == "run"
    capsys.readouterr()


# -- 2. one command per folder ----------------------------------------------------------------


def test_a_locked_folder_is_refused_at_once_naming_the_holder(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    out.mkdir()
    held = lock_run_folder(out)
    for extra in ([], ["--overwrite"], ["--resume"]):
        assert main(["pretrain", "--out", str(out), *tiny, *extra]) == 2
        err = _err(capsys)
        assert f"pid {os.getpid()} on host {platform.node()}" in err, err
        assert "in use by another bgresample command" in err
    assert [p.name for p in out.iterdir()] == [".lock"]  # nothing written
    held.release()
    assert main(["pretrain", "--out", str(out), *tiny]) == 0
    lock_run_folder(out).release()  # released when the command ended
    assert main(["pretrain", "--out", str(out), *tiny]) == 2  # "already holds a run"
    lock_run_folder(out).release()  # released after an error too


def test_the_lock_of_a_killed_process_does_not_block(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    out.mkdir()
    code = (
        "import sys, time; from bgresample.runfolder import lock_run_folder; "
        "lock_run_folder(sys.argv[1]); print('locked', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["pretrain", "--out", str(out), *tiny]) == 2
        assert f"pid {holder.pid} on host" in _err(capsys)
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((out / ".lock").read_text())["pid"] == holder.pid  # a stale file ...
    assert main(["pretrain", "--out", str(out), *tiny]) == 0  # ... that does not block


def test_report_waits_for_no_one_and_never_suggests_resume(run_copy, capsys):
    out, _ = run_copy
    held = lock_run_folder(out)
    try:
        assert main(["report", str(out)]) == 2
    finally:
        held.release()
    err = _err(capsys)
    assert f"pid {os.getpid()}" in err and "--resume" not in err


# -- 3. --out on a folder that is not a run -----------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--overwrite"], ["--resume"]])
def test_a_folder_that_is_not_a_run_is_never_written(tmp_path, tiny, capsys, extra):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text('{"my": "results"}')
    (mine / "notes.txt").write_text("my notes\n")
    (mine / "meta.json").write_text('{"author": "me"}')  # not bgresample's
    before = _files(mine)
    assert main(["pretrain", "--out", str(mine), *tiny, *extra]) == 2
    err = _err(capsys)
    assert "is not empty and is not a bgresample run folder" in err
    assert "notes.txt" in err and "choose an empty or new --out" in err
    assert _files(mine) == before
    assert sorted(p.name for p in mine.iterdir()) == ["meta.json", "notes.txt", "results.json"]


# -- 4. atomic writes of a report ---------------------------------------------------------------


def _full_disk_at(target: str):
    real = os.replace

    def replace(src, dst, *a, **k):
        if str(dst).endswith(target):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, *a, **k)

    return replace


@pytest.mark.parametrize(
    "where", ["fsync", "scores_gaussian.svg", "gallery_missed_ood.png", "report.md"]
)
def test_report_on_a_full_disk_is_one_line_and_keeps_the_previous_files(
    run_copy, data_root, monkeypatch, capsys, where
):
    out, _ = run_copy
    before = _files(out)
    if where == "fsync":

        def full(fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(files.os, "fsync", full)
    else:
        monkeypatch.setattr(files.os, "replace", _full_disk_at(where))
    assert main(["report", str(out), "--data-root", str(data_root)]) == 2
    err = _err(capsys)
    assert f"could not write {out}" in err and "No space left on device" in err
    if where != "fsync":
        assert where in err
    assert not [p for p in out.rglob("*.tmp")]
    assert (out / "report.md").read_bytes() == before["report.md"]
    assert _files(out) == before  # the figures written before the failure are the same bytes
    monkeypatch.undo()
    lock_run_folder(out).release()


def test_log_file_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "log.txt").mkdir()
    with pytest.raises(UnsafePathError, match="log.txt: it is not a regular file"):
        setup_logging(tmp_path, quiet=True)
    (tmp_path / "log.txt").rmdir()
    tmp_path.chmod(0o500)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("running as a user who can write into read-only folders")
        with pytest.raises(UserError, match="cannot write the log file .*log.txt"):
            setup_logging(tmp_path, quiet=True)
    finally:
        tmp_path.chmod(0o700)


# -- 6. Ctrl-C ----------------------------------------------------------------------------------


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_interrupted_stage_says_how_to_resume_and_releases_the_lock(
    tmp_path, tiny, monkeypatch, capsys
):
    monkeypatch.setattr(commands, "write_json", _interrupt)  # after pretrain.safetensors
    out = tmp_path / "run"
    assert main(["pretrain", "--out", str(out), *tiny]) == 130
    err = capsys.readouterr().err
    assert "interrupted; continue with the same command and --resume" in err
    assert (out / "pretrain.safetensors").is_file()
    lock_run_folder(out).release()


def test_interrupted_before_any_work_leaves_no_folder(tmp_path, tiny, monkeypatch, capsys):
    """Ctrl-C before a result is written: the folder goes, and the command simply re-runs."""
    monkeypatch.setattr(commands, "setup_logging", _interrupt)  # after the folder is locked
    out = tmp_path / "run"
    assert main(["pretrain", "--out", str(out), *tiny]) == 130
    err = capsys.readouterr().err
    assert "interrupted; run the same command again" in err and "--resume" not in err
    assert not out.exists()


def test_interrupted_before_the_folder_exists_does_not_suggest_resume(
    tmp_path, tiny, monkeypatch, capsys
):
    """Ctrl-C while the config is read (the first seconds): there is nothing to resume."""
    monkeypatch.setattr(cli, "resolve_config", _interrupt)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), *tiny]) == 130
    err = capsys.readouterr().err
    assert "interrupted; run the same command again" in err and "--resume" not in err
    assert not out.exists()


def test_stdout_closed_by_its_reader_ends_quietly(tmp_path):
    """`bgresample datasets | head -1`: no error line, the exit status of a broken pipe."""
    cmd = [sys.executable, "-m", "bgresample", "datasets", "--data-root", str(tmp_path)]
    for buffered in (True, False):  # the output held until exit, or written as it comes
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        env |= {} if buffered else {"PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        proc.stdout.close()  # the reader leaves before the first write
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 141 and "error" not in err.lower(), err


def test_interrupted_report_does_not_suggest_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(commands, "build_report", _interrupt)
    assert main(["report", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" not in err
    reports = Path(commands.__file__).parent / "reports"
    for path in [*reports.glob("*.py"), Path(commands.__file__)]:
        text = path.read_text()
        if path.name == "commands.py":
            text = text[text.index("def cmd_report") : text.index("def cmd_compare")]
        if path.name == "build.py":  # leave out what it says of a run that did not finish
            text = text[: text.index("def _no_results")] + text[text.index("def read_results") :]
        assert "--resume" not in text, path


# -- 7. other commands and other inputs (issue 22) ------------------------------------------------


def test_another_command_resuming_a_run_is_refused_and_changes_nothing(run_copy, tiny, capsys):
    """`finetune --resume` on a finished `run` folder would replace its files."""
    out, args = run_copy
    before = _files(out)
    ck = out / "pretrain" / "pretrain.safetensors"
    finetune = ["finetune", "--checkpoint", str(ck), "--variant", "full", "--out", str(out)]
    assert main([*finetune, "--resume", "--config", str(out / "config.yaml"), *tiny]) == 2
    err = _err(capsys)
    assert "holds a run of `bgresample run`, not of `bgresample finetune`" in err
    assert "--overwrite" in err
    assert _files(out) == before


def test_a_failed_command_keeps_the_run_it_resumed(run_copy, tiny, capsys, monkeypatch):
    """Only a folder the failed command started afresh is removed, never one it resumed."""
    out, args = run_copy
    before = _files(out)
    monkeypatch.setattr(commands, "load_benchmark", _interrupt)
    assert main([*args, "--out", str(out), "--resume"]) == 130
    assert "continue with the same command and --resume" in capsys.readouterr().err
    after = _files(out)
    assert set(after) == set(before) and after["results.json"] == before["results.json"]


def test_overwrite_by_another_command_replaces_the_whole_run(run_copy, tiny, capsys, tmp_path):
    out, _ = run_copy
    inside = next(out.glob("seed_0/*.safetensors"))
    evaluate = ["evaluate", "--out", str(out), "--overwrite", "--config", str(out / "config.yaml")]
    before = _files(out)
    assert main([*evaluate, "--checkpoint", str(inside), *tiny]) == 2  # would delete its input
    assert "lies inside" in _err(capsys) and _files(out) == before
    ck = tmp_path / "model.safetensors"
    shutil.copy(inside, ck)
    assert main([*evaluate, "--checkpoint", str(ck), *tiny]) == 0
    capsys.readouterr()
    assert not list(out.glob("seed_*")) and not (out / "pretrain").exists()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["command"] == "evaluate" and "resumed" not in meta
    assert meta["inputs"]["--checkpoint"]["identity"]["type"] == "file"
    assert list(json.loads((out / "results.json").read_text())["variants"]) == ["model"]


@pytest.mark.parametrize("name", [".lock", ".x.tmp", ".hidden"])
def test_a_folder_holding_only_a_dotfile_is_a_users_folder(tmp_path, tiny, capsys, name):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / name).write_text("mine\n")
    for extra in ([], ["--overwrite"], ["--resume"]):
        assert main(["pretrain", "--out", str(mine), *tiny, *extra]) == 2
        err = _err(capsys)
        assert "is not a bgresample run folder" in err and name in err
    assert [p.name for p in mine.iterdir()] == [name] and (mine / name).read_text() == "mine\n"


def test_a_failed_start_leaves_no_new_folder(tmp_path, tiny, capsys, monkeypatch):
    """A new --out whose lock cannot be taken is removed again."""
    out = tmp_path / "new"

    def refuse(folder):
        raise UserError("no lock today")

    monkeypatch.setattr("bgresample.runfolder.lock_run_folder", refuse)
    assert main(["pretrain", "--out", str(out), *tiny]) == 2
    assert "no lock today" in _err(capsys)
    assert not out.exists()


def test_the_lock_file_is_removed_when_a_command_ends(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--out", str(out), *tiny]) == 0
    assert not (out / ".lock").exists()
    assert main(["pretrain", "--out", str(out), *tiny]) == 2  # after an error too
    capsys.readouterr()
    assert not (out / ".lock").exists()
    held = lock_run_folder(out)
    assert (out / ".lock").is_file()
    held.release()
    assert not (out / ".lock").exists()


def test_keys_added_since_a_run_at_their_defaults_are_no_change():
    from bgresample.config import dump, load_config
    from bgresample.runfolder import config_changes

    saved = yaml.safe_load(dump(default_config()))
    del saved["log"]  # a run made before the log section existed
    saved["selectors"].pop("energy")
    assert config_changes(saved, default_config()) == []
    changed = load_config(sets=["log.wandb=true"])
    assert [k for k, _, _ in config_changes(saved, changed)] == ["log.wandb"]
