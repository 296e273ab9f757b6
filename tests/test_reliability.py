"""Fault injection: kills and resumes, malicious pickles, failed writes, bad data, bad arguments."""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from bgresample import checkpoint, files
from bgresample.checkpoint import load_model_state, save_model, save_tensors
from bgresample.cli import main
from bgresample.errors import UserError
from bgresample.files import WriteError
from bgresample.models import create_model

RESUMABLE = [
    "--set",
    "evaluate.ood=[glyphs, gaussian]",
    "--set",
    "pretrain.epochs=6",
    "--set",
    "pretrain.checkpoint_every=1",
    "--set",
    "resample.draws_per_item=3",
    "--set",
    "resample.batch_size=64",
    "--set",
    "resample.refresh_every=4",
    "--set",
    "finetune.epochs=4",
    "--set",
    "finetune.checkpoint_every=1",
    "--set",
    "finetune.batch_size=64",
    "--set",
    "finetune.background_batch_size=64",
    "--set",
    "run.seeds=1",
]


def _metrics(run: Path) -> dict:
    res = json.loads((run / "results.json").read_text())
    return {k: res[k] for k in ("variants", "paired_differences", "composition", "resample")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("ref") / "run"
    args = ["run", "--quick", *tiny, *RESUMABLE]
    assert main([*args, "--out", str(out)]) == 0
    return out, args


def test_two_plain_runs_write_the_same_metrics(reference, tmp_path):
    ref, args = reference
    assert main([*args, "--out", str(tmp_path / "again")]) == 0
    assert _metrics(tmp_path / "again") == _metrics(ref)


@pytest.mark.parametrize(
    "marker",
    [
        "pretrain/pretrain.state.safetensors",  # during pre-training
        "seed_0/resample.state.safetensors",  # during resampling
        "seed_0/full.state.safetensors",  # during fine-tuning
        "seed_0/resampled.json",  # between the last evaluation and the report
    ],
)
def test_sigkill_then_resume_gives_the_uninterrupted_results(reference, marker, tmp_path):
    ref, args = reference
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "bgresample", *args, "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (out / marker).exists():
        assert proc.poll() is None, f"run ended before {marker} appeared"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "report.md").exists()
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert _metrics(out) == _metrics(ref)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_checkpoint_is_refused_and_never_runs(tmp_path, tiny, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pt"
    with open(evil, "wb") as f:
        pickle.dump({"fc.weight": _Evil(marker)}, f)
    model = create_model("small_cnn", 8)
    with pytest.raises(UserError, match="refused to load"):
        load_model_state(evil, model)
    args = ["evaluate", "--checkpoint", str(evil), "--out", str(tmp_path / "ev"), *tiny]
    assert main(args) == 2
    assert "refused to load" in capsys.readouterr().err
    assert not marker.exists()


def test_foreign_plain_pt_state_dict_loads(tmp_path):
    model = create_model("small_cnn", 8)
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "m.pt"
    )
    other = create_model("small_cnn", 8)
    load_model_state(tmp_path / "m.pt", other)
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)
    with pytest.raises(UserError, match="shape mismatch"):
        load_model_state(tmp_path / "m.pt", create_model("small_cnn", 3))


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    model = create_model("small_cnn", 8)
    path = tmp_path / "model.safetensors"
    save_model(path, model)
    before = path.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(WriteError, match="No space left on device; the previous file is intact"):
        save_model(path, create_model("small_cnn", 8))
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
    load_model_state(path, create_model("small_cnn", 8))


def test_failed_write_on_a_read_only_file_system_cleans_up_quietly(tmp_path, monkeypatch):
    path = tmp_path / "report.md"
    path.write_text("previous")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.os, "replace", read_only)
    monkeypatch.setattr(Path, "unlink", read_only)  # the clean-up fails too
    with pytest.raises(WriteError, match="report.md: Read-only file system; the previous file"):
        files.atomic_write_text(path, "new")
    assert path.read_text() == "previous"


def _weights(k: int = 8) -> dict[str, torch.Tensor]:
    return create_model("small_cnn", k).state_dict()


def _ours(k: int = 8) -> dict[str, str]:
    return {"bgresample": json.dumps({"model_name": "small_cnn", "num_classes": k})}


def _nan_weights() -> dict[str, torch.Tensor]:
    w = _weights()
    w["fc.weight"][0, 0] = float("nan")
    return w


def _wrong_shape() -> dict[str, torch.Tensor]:
    w = _weights()
    w["fc.weight"] = torch.zeros(8, w["fc.weight"].shape[1] + 1)
    return w


@pytest.mark.parametrize(
    "tensors, metadata, message",
    [
        (
            _wrong_shape,
            _ours(),
            r"shape mismatch at fc.weight: \[8, \d+\] in the file, \[8, \d+\] exp",
        ),
        (
            _weights,
            {"bgresample": "{model_name: small_cnn"},
            "bgresample metadata that is not JSON",
        ),
        (_weights, {"bgresample": "[8]"}, "metadata holding a list, expected a JSON object"),
        (_nan_weights, _ours(), r"holds NaN or infinite values in 1 tensor\(s\) \(fc.weight\)"),
        (_weights, None, r"holds \d+ tensors but no bgresample metadata \(model_name, num_classes"),
        (_weights, {"format": "pt"}, "not written by bgresample; pass a pre-trained checkpoint of"),
    ],
    ids=["shapes", "not-json", "not-a-mapping", "nan", "foreign", "foreign-with-metadata"],
)
def test_checkpoint_that_passes_the_header_but_not_the_load(tmp_path, tensors, metadata, message):
    path = tmp_path / "m.safetensors"
    save_file(tensors(), str(path), metadata=metadata)
    model = create_model("small_cnn", 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UserError, match=message) as e:
        load_model_state(path, model)
    assert "\n" not in str(e.value) and "None" not in str(e.value)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched


def test_foreign_safetensors_given_to_evaluate_is_one_line(tmp_path, tiny, capsys):
    path = tmp_path / "foreign.safetensors"
    save_file(_weights(), str(path))
    args = ["evaluate", "--checkpoint", str(path), "--out", str(tmp_path / "e"), *tiny]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "no bgresample metadata" in err and len(err.splitlines()) == 1


def test_stage_state_of_another_stage_is_a_clear_error(tmp_path):
    path = tmp_path / "x.state.safetensors"
    save_tensors(path, {"w": torch.zeros(2)}, {"model": "weights"})
    with pytest.raises(UserError, match="not a training state written by bgresample"):
        checkpoint.StageState(path).load({"model": create_model("small_cnn", 8)})
    checkpoint.StageState(path).save(3, {"model": torch.nn.Linear(2, 2)})
    with pytest.raises(UserError, match="does not fit this stage's model"):
        checkpoint.StageState(path).load({"model": create_model("small_cnn", 8)})


def test_read_only_output_folder_reports_the_error(tmp_path, tiny, capsys):
    if os.geteuid() == 0:
        target = Path("/proc/bgresample-run")  # not creatable, even for root
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "run"
    assert main(["pretrain", "--out", str(target), *tiny]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and "Traceback" not in err


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save_tensors(path, {"x": torch.zeros(1000)}, {})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="not a readable safetensors file"):
        checkpoint.load_tensors(path)


def _bad_pool(root: Path) -> None:
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(150):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / f"ok{i}.jpg")
    good = (root / "ok0.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("not an image")
    deep = (rng.integers(0, 65535, (40, 40))).astype(np.uint16)
    Image.fromarray(deep).save(root / "sixteen.png")


def test_pool_with_broken_files_completes_and_reports_skips(tmp_path, tiny, caplog):
    _bad_pool(tmp_path / "pool")
    out = tmp_path / "run"
    args = [
        "run",
        "--quick",
        *tiny,
        "--background",
        f"folder:{tmp_path / 'pool'}",
        "--out",
        str(out),
    ]
    args += ["--set", "run.seeds=1", "--set", "resample.draws_per_item=3"]
    args += ["--set", "evaluate.ood=[glyphs]"]
    assert main(args) == 0
    log = (out / "log.txt").read_text()
    assert "skipped" in log and "unreadable" in log
    for name in ("truncated.jpg", "empty.png", "text.png"):
        assert name in log
    assert "sixteen.png" not in log  # 16-bit PNGs are converted, not skipped


def test_a_binary_config_file_is_one_line(tmp_path, tiny, capsys):
    bad = tmp_path / "config.yaml"
    bad.write_bytes(bytes(range(256)))
    assert main(["run", "--out", str(tmp_path / "run"), *tiny, "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a text (UTF-8) file" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "select.gamma=0"], "select.gamma=0 is invalid: expected a number in (0, 1]"),
        (["--set", "select.gamma=1.5"], "expected a number in (0, 1]"),
        (["--set", "resample.eps=1.2"], "resample.eps=1.2 is invalid: expected a number in [0, 1]"),
        (["--set", "resample.alpha=-1"], "resample.alpha=-1 is invalid: expected a non-negative"),
        (["--set", "finetune.alpha=-0.5"], "finetune.alpha=-0.5 is invalid"),
        (["--set", "pretrain.lr=-0.1"], "pretrain.lr=-0.1 is invalid: expected a positive number"),
        (["--set", "resample.lr_w=0"], "resample.lr_w=0 is invalid"),
        (["--set", "model.name=vgg"], "unknown model 'vgg'; valid names: densenet100, resnet18"),
        (["--preset", "imagenet"], "unknown preset 'imagenet'; valid presets: cifar10"),
        (["--id", "emnist:/data"], "unknown dataset kind 'emnist'; valid id kinds: cifar10"),
        (["--ood", "nope"], "unknown OOD set 'nope'"),
        (["--set", "evaluate.ood=[]"], "no OOD test set given"),
        (
            ["--set", "resample.batch_size=1000", "--set", "data.embedded.pool_size=600"],
            "fewer than one batch",
        ),
        (["--set", "nosuch.key=1"], "unknown config key 'nosuch'"),
        (["--set", "resample.eps=abc"], "resample.eps='abc' is invalid: expected a number"),
        (["--set", "resample.eps=null"], "resample.eps=null is invalid"),
        (["--set", "resample=5"], "resample must be a mapping with the keys"),
        (["--set", "resample.batch_size=1.5"], "expected a positive integer"),
        (["--set", "seed=abc"], "seed='abc' is invalid: expected a non-negative integer"),
        (["--set", "resample.momentum=-1"], "expected a non-negative number"),
        (["--set", "pretrain.epochs=-1"], "pretrain.epochs=-1 is invalid"),
        (["--set", "data.embedded.pool_size=0"], "data.embedded.pool_size=0 is invalid"),
        (["--set", "model.kwargs.foo=1"], "unexpected keyword argument 'foo'; valid keys: dropout"),
        (["--set", "data.embedded.family_shares.stars=1"], "family_shares.stars'"),
        (["--set", "data.validation.id_fraction=1"], "data.validation.id_fraction=1 is invalid"),
    ],
)
def test_bad_arguments_give_one_clear_line(extra, message, tiny, tmp_path, capsys):
    code = main(["run", "--out", str(tmp_path / "run"), *tiny, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_checkpoint_of_wrong_class_count_and_occupied_out(tmp_path, tiny, capsys):
    path = tmp_path / "k3.safetensors"
    save_model(path, create_model("small_cnn", 3))
    assert main(["evaluate", "--checkpoint", str(path), "--out", str(tmp_path / "e"), *tiny]) == 2
    assert "small_cnn with 3 classes" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "config.yaml").write_text("seed: 1\n")
    (tmp_path / "busy" / "meta.json").write_text('{"command": "pretrain", "code_version": "0"}')
    assert main(["pretrain", "--out", str(tmp_path / "busy"), *tiny]) == 2
    assert "already holds a run; pass --overwrite" in capsys.readouterr().err


def test_nan_loss_stops_with_step_and_checkpoint(tmp_path, tiny, capsys):
    args = ["pretrain", "--out", str(tmp_path / "p"), *tiny, "--set", "pretrain.lr=1e30"]
    args += ["--set", "pretrain.epochs=4", "--set", "pretrain.checkpoint_every=1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "pretrain: loss became" in err and "at step" in err and "last good checkpoint" in err


# -- results files and pools that are not what they claim (issue 22, item 6) ---------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{not json", "is not JSON"),
        (b"[1, 2]", "holds no JSON object"),
        (b'{"schema": 1}', "holds an object without variants"),
        (b'{"variants": {"x": 5}}', "holds an object without variants"),
        (b"\xff\xfe", "is not JSON"),
    ],
)
@pytest.mark.parametrize("command", ["report", "compare"])
def test_report_and_compare_on_a_broken_results_file_are_one_line(
    tmp_path, capsys, content, message, command
):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_bytes(content)
    assert main([command, str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"{run / 'results.json'}" in err and message in err


@pytest.mark.parametrize(
    "array, message",
    [(None, "the file is empty or cut short"), (0, "the array holds no images")],
)
def test_an_empty_npy_pool_is_one_line(tmp_path, tiny, capsys, array, message):
    path = tmp_path / "pool.npy"
    if array is None:
        path.write_bytes(b"")
    else:
        np.save(path, np.zeros((array, 32, 32, 3), np.uint8))
    args = ["select", "--method", "random", "--pool", f"npy:{path}", "--out", str(tmp_path / "o")]
    assert main([*args, *tiny]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert message in err and str(path) in err
