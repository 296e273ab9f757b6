"""Safetensors checkpoints with JSON metadata, and the resumable state of a training stage.

Files are written by :mod:`bgresample.files` (atomic, never through a symbolic link), so a crash
or a full disk never leaves a truncated file: the previous file stays intact until the new one
is whole. Nothing is ever unpickled: tensors live in safetensors files, everything else in JSON.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save

from bgresample import dist
from bgresample.errors import UserError
from bgresample.files import atomic_write_bytes

log = logging.getLogger("bgresample")


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Save ``tensors`` (made contiguous, on the CPU) with ``meta`` as JSON in the header."""
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, save(flat, metadata={"bgresample": json.dumps(meta)}))


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a safetensors file written by :func:`save_tensors` -> (tensors, meta). ``meta`` is
    ``{}`` for a file without bgresample metadata; metadata that is not a JSON object is a
    :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; pass the .safetensors file a stage wrote")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(
            f"checkpoint {path} is not a readable safetensors file ({e}); "
            "re-run the stage that writes it"
        ) from None
    raw = header.get("bgresample")
    if raw is None:
        return tensors, {}
    try:
        meta = json.loads(raw)
    except ValueError:
        raise UserError(
            f"checkpoint {path} has bgresample metadata that is not JSON ({raw[:40]!r}...); "
            "expected the JSON object bgresample writes: the file is damaged or was not written "
            "by bgresample; re-run the stage that writes it"
        ) from None
    if not isinstance(meta, dict):
        kind = _JSON_KINDS.get(type(meta), "a value")
        raise UserError(
            f"checkpoint {path} has bgresample metadata holding {kind}, "
            "expected a JSON object; the file was not written by bgresample; re-run the stage "
            "that writes it"
        )
    return tensors, meta


_JSON_KINDS = {
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def save_npz(path: str | Path, arrays: dict[str, Any]) -> None:
    """Save numpy arrays as a compressed ``.npz``, atomically."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def save_model(
    path: str | Path, model: torch.nn.Module, meta: dict[str, Any] | None = None
) -> None:
    """Save a classifier with its architecture name, class count and, when it carries one
    (:func:`bgresample.engine.experiment.build_model`), the input normalisation it was trained with
    (``normalization``: ``size``, ``mean``, ``std``)."""
    info = {"model_name": model.model_name, "num_classes": model.num_classes}
    norm = getattr(model, "normalization", None)
    if norm is not None:
        info["normalization"] = dict(norm)
    save_tensors(path, model.state_dict(), {**info, **(meta or {})})


def _check_normalization(path: str | Path, held: Any, ours: Any) -> None:
    """Refuse a checkpoint trained with another input size or normalisation than the model it
    is loaded into. A checkpoint without the record (older ones) or a model without it passes."""
    if not isinstance(held, dict) or not isinstance(ours, dict):
        return

    def same(key: str) -> bool:
        a, b = held.get(key), ours.get(key)
        if isinstance(a, list) and isinstance(b, list | tuple):
            return len(a) == len(b) and all(
                abs(float(x) - float(y)) < 1e-9 for x, y in zip(a, b, strict=True)
            )
        return a == b

    bad = [k for k in ("size", "mean", "std") if k in held and not same(k)]
    if bad:
        was = ", ".join(f"data.{k}={_yaml_value(held[k])}" for k in bad)
        now = ", ".join(f"data.{k}={_yaml_value(ours.get(k))}" for k in bad)
        fix = " ".join(f"--set data.{k}={_yaml_value(held[k])}" for k in bad)
        raise UserError(
            f"checkpoint {path} was trained with {was}, but this run uses {now}; pass {fix} to "
            "use it (or a checkpoint trained with this run's values)"
        )


def _yaml_value(v: Any) -> str:
    if isinstance(v, list | tuple):
        return "[" + ",".join(repr(float(x)) for x in v) + "]"
    return str(v)


def load_foreign(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a foreign ``.pt`` / ``.pth`` file, loaded with ``weights_only=True``:
    a pickle that would need more than tensors and plain containers is refused, never run."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError or RuntimeError, among others
        raise UserError(
            f"refused to load {path}: it is not a plain tensor checkpoint and loading it would "
            f"execute code ({type(e).__name__}). Convert it to safetensors in a trusted session."
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def check_finite_weights(tensors: dict[str, torch.Tensor], what: str, fix: str) -> None:
    """Refuse weights holding NaN or infinite values (saved after training diverged)."""
    broken = [n for n, t in tensors.items() if t.is_floating_point() and not t.isfinite().all()]
    if broken:
        raise UserError(
            f"{what} holds NaN or infinite values in {len(broken)} tensor(s) "
            f"({', '.join(broken[:3])}), expected finite weights: it was saved after training "
            f"diverged; {fix}"
        )


def load_model_state(
    path: str | Path, model: torch.nn.Module, expect: str = "a pre-trained checkpoint"
) -> dict[str, Any]:
    """Load weights into ``model``, refusing a checkpoint of another architecture or class count.

    ``.safetensors`` files written by bgresample carry the architecture and class count; a
    foreign ``.pt`` / ``.pth`` state dict is checked by its tensor names and shapes. A checkpoint
    that records its input normalisation is refused for a model built for another one.
    """
    ours = f"{model.model_name} with {model.num_classes} classes"
    if Path(path).suffix in (".pt", ".pth"):
        if not Path(path).is_file():
            raise UserError(f"checkpoint {path} not found")
        tensors, meta = load_foreign(path), {}
    else:
        tensors, meta = load_tensors(path)
        name, k = meta.get("model_name"), meta.get("num_classes")
        if name is None or k is None:
            raise UserError(
                f"checkpoint {path} holds {len(tensors)} tensors but no bgresample metadata "
                f"(model_name, num_classes): it was not written by bgresample; pass {expect} "
                f"of {ours} written by `bgresample pretrain` or `finetune`"
            )
        if name != model.model_name or k != model.num_classes:
            hint = f" (or --set model.name={name})" if name != model.model_name else ""
            raise UserError(
                f"checkpoint {path} holds {name} with {k} classes, but this run uses {ours}; "
                f"pass {expect} of the same model and dataset{hint}"
            )
        _check_normalization(path, meta.get("normalization"), getattr(model, "normalization", None))
    own = model.state_dict()
    bad = [n for n, t in tensors.items() if n in own and own[n].shape != t.shape]
    if bad:
        held, wanted = list(tensors[bad[0]].shape), list(own[bad[0]].shape)
        raise UserError(
            f"checkpoint {path} does not fit {ours} (shape mismatch at {bad[0]}: {held} in "
            f"the file, {wanted} expected); pass {expect} of the same model and dataset"
        )
    missing = [n for n in own if n not in tensors]
    unexpected = [n for n in tensors if n not in own]
    if missing or unexpected:
        raise UserError(
            f"checkpoint {path} does not match {model.model_name}: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    check_finite_weights(
        tensors, f"checkpoint {path}", f"pass {expect} from a run that trained normally"
    )
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise UserError(f"checkpoint {path} does not fit {ours} ({first})") from None
    return meta


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint without loading its tensors."""
    return load_tensors(path)[1]


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model a bgresample checkpoint holds, in eval mode, and the checkpoint's metadata.

    The model is the one named in the metadata (``model_name``, ``num_classes``), built with its
    factory's default keyword arguments (checkpoints do not record ``model.kwargs``; options
    such as dropout do not change the weights), with the recorded ``normalization`` (inputs
    reach it as ``(x / 255 - mean) / std`` at ``size`` x ``size``) as its ``normalization``
    attribute. A model of one's own code (``package.module:factory``) is not imported because a
    file names it: build it and call :func:`load_model_state`. Raises ``FileNotFoundError`` for
    a missing file and ``ValueError`` for a file that is not such a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            errno.ENOENT,
            "checkpoint not found; pass a .safetensors file that bgresample wrote",
            str(path),
        )
    if path.suffix in (".pt", ".pth"):
        raise ValueError(
            f"{path} is a PyTorch pickle, which names no model; convert it first "
            "(`bgresample convert --authors FILE.pth --num-classes K --out FILE.safetensors` for "
            "the authors' checkpoints), or build the model and load it with "
            "bgresample.checkpoint.load_model_state(path, model)"
        )
    try:
        return _load_checkpoint(path)
    except UserError as e:
        raise ValueError(str(e)) from None


def tensor_shapes(path: str | os.PathLike) -> dict[str, list[int]]:
    """The shapes of the tensors of a safetensors checkpoint, by name, read from its header
    ({} for another file: :func:`load_model_state` says what is wrong with it)."""
    if Path(path).suffix in (".pt", ".pth"):
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError):
        return {}


def _load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    from bgresample.losses.hopfield import attach_stored_head
    from bgresample.models import DEFAULT_SIZE, build_model
    from bgresample.models.foreign import LIBRARIES, is_foreign

    meta = read_meta(path)
    name, k = meta.get("model_name"), meta.get("num_classes")
    if not isinstance(name, str) or not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise UserError(
            f"checkpoint {path} records no model (model_name {name!r}, num_classes {k!r}); "
            "expected a model checkpoint written by bgresample (pretrain, finetune, run or "
            "convert)"
        )
    if is_foreign(name) and name.partition(":")[0] not in LIBRARIES:
        raise UserError(
            f"checkpoint {path} holds the model {name}, a factory of your own code, which "
            "load_checkpoint does not import because a file names it; build it with "
            f"bgresample.models.create_model({name!r}, {k}) and load the weights with "
            "bgresample.checkpoint.load_model_state(path, model)"
        )
    norm = meta.get("normalization")
    size = norm.get("size") if isinstance(norm, dict) else None
    model = build_model(name, k, {}, size if isinstance(size, int) else DEFAULT_SIZE)
    if isinstance(norm, dict):
        model.normalization = dict(norm)
    attach_stored_head(model, tensor_shapes(path))  # a model fine-tuned with finetune.loss=hopfield
    load_model_state(path, model, expect="a model checkpoint")
    return model.eval(), meta


# -- resumable stage state ----------------------------------------------------------------------

_TENSOR = "__tensor__:"


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """Replace every tensor in a nested dict/list by a reference, collecting it in ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = prefix or "t"
        tensors[key] = obj
        return _TENSOR + key
    if isinstance(obj, dict):
        return {str(k): flatten(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    return obj


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(obj, str) and obj.startswith(_TENSOR):
        return tensors[obj[len(_TENSOR) :]]
    if isinstance(obj, dict):
        return {k: unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def _int_keys(d: Any) -> Any:
    """Optimizer state dicts index parameters by int; JSON turned them into str."""
    if isinstance(d, dict):
        return {
            (int(k) if isinstance(k, str) and k.isdigit() else k): _int_keys(v)
            for k, v in d.items()
        }
    return d


class StageState:
    """The resumable state of one training stage at ``path`` (``None``: never written): model,
    optimisers, schedulers and counters in one safetensors file, nested state dicts split into
    tensors and a JSON skeleton in the metadata. Every loop draws its randomness from
    ``(seed, stream, step)`` (:mod:`bgresample.rng`), so the step is all the RNG state a resume
    needs."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def save(self, step: int, parts: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        """Write the state at ``step`` atomically (rank 0 only). ``parts`` maps names to objects
        with ``state_dict()`` (modules, optimisers, schedulers, ...); ``extra`` is JSON-able."""
        if self.path is None or not dist.info().is_main:
            return
        tensors: dict[str, torch.Tensor] = {}
        skeleton = {name: flatten(part.state_dict(), tensors, name) for name, part in parts.items()}
        save_tensors(self.path, tensors, {"step": step, "state": skeleton, "extra": extra or {}})

    def load(self, parts: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Restore ``parts`` from the file; returns (step, extra), or (0, {}) if there is none."""
        if self.path is None or not self.path.is_file():
            return 0, {}
        tensors, meta = load_tensors(self.path)
        fix = "delete it to restart the stage, or start a new run with --overwrite"
        state = meta.get("state")
        if not isinstance(state, dict) or not isinstance(meta.get("step"), int):
            raise UserError(
                f"{self.path} is not a training state written by bgresample (its metadata has "
                f"no step and state); {fix}"
            )
        for name, part in parts.items():
            if name not in state:
                raise UserError(f"{self.path} holds no state of {name!r}; {fix}")
            try:
                value = unflatten(state[name], tensors)
                if isinstance(part, torch.optim.Optimizer):
                    value = _int_keys(value)
                part.load_state_dict(value)
            except (KeyError, ValueError, TypeError, RuntimeError) as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[-1].strip()
                raise UserError(
                    f"{self.path} does not fit this stage's {name} ({first}); {fix}"
                ) from None
        log.info("resumed %s at step %d", self.path.name, meta["step"])
        return int(meta["step"]), meta.get("extra", {})

    def remove(self) -> None:
        """Delete the state file (the stage finished; rank 0 only)."""
        if self.path is not None and dist.info().is_main:
            self.path.unlink(missing_ok=True)
