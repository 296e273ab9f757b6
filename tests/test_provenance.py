"""A run folder records what it was made from, and --resume refuses other inputs (issue 22,
item 3): checkpoint, subset, weights, scores, pool and OOD files and folders. An input file
leads back to the run that made it, whose config a stage command starts from (issue 26)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bgresample.cli import build_parser, main, resolve_config
from bgresample.config import default_config
from bgresample.errors import UserError
from bgresample.provenance import (
    FULL_HASH_LIMIT,
    differences,
    fingerprint,
    record,
    shared_data,
)
from bgresample.runfolder import (
    defining,
    defining_changes,
    input_origin,
    prepare_run_folder,
    release_locks,
    run_folder_of,
)


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- fingerprints ---------------------------------------------------------------------------------


def test_a_file_is_identified_by_content_not_place(tmp_path):
    a = _file(tmp_path / "a" / "ck.safetensors", b"weights" * 100)
    b = _file(tmp_path / "b" / "moved.safetensors", b"weights" * 100)
    c = _file(tmp_path / "c.safetensors", b"weights" * 99 + b"weightX")
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)
    assert fingerprint(a)["bytes"] == 700 and "sampled" not in fingerprint(a)
    assert fingerprint(tmp_path / "absent") is None


def test_a_large_file_is_sampled(tmp_path):
    path = tmp_path / "pool.bin"
    with open(path, "wb") as f:
        f.truncate(FULL_HASH_LIMIT + 1)
    first = fingerprint(path)
    assert first["sampled"] is True
    with open(path, "r+b") as f:  # a byte in the last sampled chunk
        f.seek(FULL_HASH_LIMIT - 10)
        f.write(b"\1")
    assert fingerprint(path) != first


def test_a_folder_is_identified_by_its_listing_and_sampled_contents(tmp_path):
    for i in range(40):
        _file(tmp_path / "pool" / f"c{i % 3}" / f"{i:03d}.png", bytes([i]) * 50)
    first = fingerprint(tmp_path / "pool")
    assert first["type"] == "folder" and first["files"] == 40 and first["bytes"] == 2000
    shutil.copytree(tmp_path / "pool", tmp_path / "copy")
    assert fingerprint(tmp_path / "copy") == first  # moved data is the same input
    _file(tmp_path / "pool" / "c0" / "new.png", b"x")
    assert fingerprint(tmp_path / "pool") != first  # a file added
    (tmp_path / "pool" / "c0" / "new.png").unlink()
    (tmp_path / "pool" / "c0" / "000.png").write_bytes(bytes([7]) * 50)  # same size, sampled
    assert fingerprint(tmp_path / "pool") != first


def test_differences_name_the_input_and_both_identities(tmp_path):
    a = _file(tmp_path / "a.csv", b"index\n1\n")
    b = _file(tmp_path / "b.csv", b"index\n2\n")
    old = record({"--subset": a}, default_config())
    assert differences(old, record({"--subset": a}, default_config())) == []
    (diff,) = differences(old, record({"--subset": b}, default_config()))
    assert diff.startswith("--subset: other contents (") and str(a) in diff and str(b) in diff
    (diff,) = differences(old, record({}, default_config()))
    assert diff == f"--subset: {a} -> none"


def test_an_ood_set_that_is_the_pool_or_the_id_data_is_named(tmp_path, tiny, capsys):
    pool = tmp_path / "pool.npy"
    np.save(pool, np.zeros((10, 32, 32, 3), np.uint8))
    copy = _file(tmp_path / "elsewhere" / "copy.npy", pool.read_bytes())
    other = tmp_path / "other.npy"
    np.save(other, np.ones((10, 32, 32, 3), np.uint8))
    cfg = default_config()
    cfg.data.background = f"npy:{pool}"
    cfg.evaluate.ood = [f"npy:{copy}", f"npy:{other}", "gaussian"]
    (phrase,) = shared_data(record({}, cfg))  # found by contents, at another path
    assert phrase == f"OOD set npy:{copy} is the background pool ({copy}, same fingerprint)"
    cfg.evaluate.ood = [f"npy:{other}"]
    assert shared_data(record({}, cfg)) == []
    # the command says so in its log, and runs
    args = ["evaluate", "--out", str(tmp_path / "run"), "--set", f"data.background=npy:{pool}"]
    args += ["--ood", f"npy:{copy}", "--checkpoint", str(tmp_path / "none")]
    args += [a for a in tiny if a != "--quiet"]
    assert main(args) == 2  # stops at the missing --checkpoint, after the warning
    err = capsys.readouterr().err
    assert "is the background pool" in err and "checkpoint" in err


# -- --resume with other inputs -------------------------------------------------------------------


def _prepare(out: Path, command: str, cfg=None, **kw) -> None:
    try:
        prepare_run_folder(out, cfg or default_config(), command, **kw)
    finally:
        release_locks()


@pytest.mark.parametrize("flag", ["--checkpoint", "--subset", "--weights"])
def test_resume_from_another_input_file_is_refused(tmp_path, flag):
    out = tmp_path / "run"
    first = _file(tmp_path / "first", b"the first input")
    other = _file(tmp_path / "other", b"another input!!")
    _prepare(out, "finetune", inputs={flag: first})
    before = (out / "meta.json").read_bytes()
    with pytest.raises(UserError) as e:
        _prepare(out, "finetune", resume=True, inputs={flag: other})
    msg = str(e.value)
    assert "\n" not in msg and f"{flag}: other contents" in msg and "--overwrite" in msg
    assert (out / "meta.json").read_bytes() == before
    moved = _file(tmp_path / "moved" / "first", b"the first input")
    _prepare(out, "finetune", resume=True, inputs={flag: moved})  # same content: continues


def test_resume_with_other_options_is_refused(tmp_path):
    out = tmp_path / "run"
    _prepare(out, "evaluate", options={"--scores": ["msp"], "--variant": "model"})
    with pytest.raises(UserError, match=r"--scores: \[\"msp\"\] -> \[\"energy\"\]"):
        _prepare(
            out, "evaluate", resume=True, options={"--scores": ["energy"], "--variant": "model"}
        )


@pytest.mark.parametrize("role", ["pool", "ood"])
def test_resume_with_changed_data_files_is_refused(tmp_path, role):
    """A pool (npy file) or OOD set (folder) at the same path whose contents changed."""
    out = tmp_path / "run"
    if role == "pool":
        data = tmp_path / "pool.npy"
        np.save(data, np.zeros((10, 32, 32, 3), np.uint8))
        key, flag, command = "data.background", ["--pool", f"npy:{data}"], "resample"
    else:
        data = tmp_path / "oodset"
        for i in range(5):
            _file(data / f"{i}.png", bytes([i]) * 20)
        key, flag, command = f"evaluate.ood[folder:{data}]", ["--ood", f"folder:{data}"], "evaluate"
    args = build_parser().parse_args([command, "--checkpoint", "ck", "--out", str(out), *flag])
    cfg = resolve_config(args)
    _prepare(out, command, cfg)
    assert key in json.loads((out / "meta.json").read_text())["inputs"]
    if role == "pool":
        np.save(data, np.ones((10, 32, 32, 3), np.uint8))
    else:
        _file(data / "5.png", b"one more")
    with pytest.raises(UserError, match=re.escape(f"{key}: other contents")):
        _prepare(out, command, cfg, resume=True)


def test_resample_resumed_with_another_checkpoint_is_one_line(tmp_path, tiny, capsys):
    """The reported case: `resample --checkpoint OTHER --out R --resume` on a folder made from
    another checkpoint (refused before any work: the checkpoints need not even load)."""
    out = tmp_path / "r"
    first = _file(tmp_path / "first.safetensors", b"first")
    other = _file(tmp_path / "other.safetensors", b"other")
    args = ["resample", "--out", str(out), *tiny]
    cfg = resolve_config(build_parser().parse_args([*args, "--checkpoint", str(first)]))
    _prepare(out, "resample", cfg, inputs={"--checkpoint": first})
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"}
    assert main([*args, "--checkpoint", str(other), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--checkpoint: other contents" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"} == before


# -- the run an input file came from (issue 26) ---------------------------------------------------


def _run_folder(folder: Path, cfg=None, command: str = "run", inputs=None) -> Path:
    """A run folder as prepare_run_folder leaves it: meta.json and config.yaml."""
    _prepare(folder, command, cfg or default_config(), inputs=inputs)
    return folder


def _origin_of(path: Path):
    return input_origin({"--weights": path})


def test_an_input_leads_back_to_its_run_and_seed_folder(tmp_path):
    cfg = default_config()
    cfg.data.embedded.pool_size, cfg.resample.eps = 600, 0.25
    run = _run_folder(tmp_path / "runs" / "q", cfg)
    weights = _file(run / "seed_3" / "weights.safetensors", b"w")
    origin = _origin_of(weights)
    assert origin.folder == run.absolute() and origin.seed == 3
    assert origin.cfg.data.embedded.pool_size == 600 and origin.cfg.resample.eps == 0.25
    assert _origin_of(_file(run / "pretrain" / "pretrain.safetensors", b"p")).seed is None
    assert run_folder_of(_file(tmp_path / "elsewhere" / "w.safetensors", b"w")) is None
    assert _origin_of(tmp_path / "runs" / "q" / "absent.safetensors") is None
    # a folder with a meta.json of its own is not a run folder
    _file(tmp_path / "mine" / "meta.json", b'{"author": "me"}')
    assert run_folder_of(_file(tmp_path / "mine" / "w.safetensors", b"w")) is None


def test_the_stage_config_starts_from_the_run_and_refuses_other_data(tmp_path):
    cfg = default_config()
    cfg.data.embedded.pool_size, cfg.finetune.epochs, cfg.data.root = 600, 3, str(tmp_path)
    run = _run_folder(tmp_path / "run", cfg)
    manifest = _file(run / "seed_1" / "subset_resampled.csv", b"index\n1\n")
    ckpt = _file(run / "pretrain" / "pretrain.safetensors", b"p")
    argv = ["finetune", "--checkpoint", str(ckpt), "--variant", "resampled"]
    argv += ["--subset", str(manifest), "--out", str(tmp_path / "ft")]
    resolved = resolve_config(build_parser().parse_args([*argv, "--set", "finetune.lr=0.5"]))
    assert resolved.data.embedded.pool_size == 600 and resolved.finetune.epochs == 3
    assert resolved.finetune.lr == 0.5 and resolved.seed == 0  # the checkpoint's: no seed_S
    assert resolved.data.root == str(tmp_path)
    free = ["--data-root", "/elsewhere", "--set", "data.workers=0", "--seed", "7"]
    resolved = resolve_config(build_parser().parse_args([*argv, *free]))
    assert resolved.data.root == "/elsewhere" and resolved.seed == 7
    for extra, key in [
        (["--set", "data.validation.pool_fraction=0.1"], "data.validation.pool_fraction"),
        (["--set", "model.kwargs={dropout: 0.3}"], "model.kwargs"),
        (["--preset", "cifar10"], "data.id"),
    ]:
        with pytest.raises(UserError) as e:
            resolve_config(build_parser().parse_args([*argv, *extra]))
        msg = str(e.value)
        assert "\n" not in msg and key in msg and f"the run {run.absolute()}" in msg
        assert "disagrees" in msg and extra[0] in msg


def test_a_checkpoint_alone_takes_another_pool(tmp_path):
    """A model file holds no pool indices: resample from a run's checkpoint on your own pool. With
    a subset from the run as well, the pool stays the run's (previous test)."""
    pool = tmp_path / "pool.npy"
    np.save(pool, np.zeros((10, 32, 32, 3), np.uint8))
    cfg = default_config()
    cfg.data.root = str(tmp_path)
    ckpt = _file(_run_folder(tmp_path / "run", cfg) / "pretrain" / "pretrain.safetensors", b"p")
    argv = ["resample", "--checkpoint", str(ckpt), "--out", str(tmp_path / "rs")]
    argv += ["--pool", f"npy:{pool}", "--set", "data.validation.pool_fraction=0"]
    resolved = resolve_config(build_parser().parse_args(argv))
    assert resolved.data.background == f"npy:{pool}" and resolved.data.validation.pool_fraction == 0
    with pytest.raises(UserError, match="model.name"):
        resolve_config(build_parser().parse_args([*argv, "--set", "model.name=resnet18"]))
    # with a subset (even one from no run), the pool is the checkpoint run's
    manifest = _file(tmp_path / "copied" / "subset.csv", b"index\n1\n")
    argv = ["finetune", "--checkpoint", str(ckpt), "--subset", str(manifest), "--variant", "random"]
    argv += ["--out", str(tmp_path / "ft"), "--pool", f"npy:{pool}"]
    with pytest.raises(UserError, match="data.background"):
        resolve_config(build_parser().parse_args(argv))


def test_defining_keys_are_data_and_model_but_location_and_speed():
    assert defining("data.embedded.pool_size") and defining("model.name")
    assert defining("data.validation.seed") and defining("data.size")
    for key in ("data.root", "data.workers", "data.download", "data.embedded.ood_size"):
        assert not defining(key), key
    assert not defining("seed") and not defining("finetune.lr") and not defining("evaluate.ood")


def test_a_moved_pool_is_the_same_data(tmp_path):
    """data.background at another path is the run's pool when its contents are the same."""
    pool = tmp_path / "pool.npy"
    np.save(pool, np.zeros((10, 32, 32, 3), np.uint8))
    cfg = default_config()
    cfg.data.background = f"npy:{pool}"
    run = _run_folder(tmp_path / "run", cfg, command="resample")
    weights = _file(run / "weights.safetensors", b"w")
    origin = _origin_of(weights)
    moved = tmp_path / "moved" / "pool.npy"
    moved.parent.mkdir()
    shutil.copy(pool, moved)
    cfg.data.background = f"npy:{moved}"
    assert defining_changes(origin, cfg) == ""
    np.save(moved, np.ones((10, 32, 32, 3), np.uint8))
    assert defining_changes(origin, cfg).startswith(f"data.background: npy:{pool} -> npy:")
    cfg.data.background = f"folder:{moved.parent}"
    assert "data.background" in defining_changes(origin, cfg)
