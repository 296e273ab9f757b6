"""Checkpoints: tensors in safetensors, metadata as JSON strings; atomic writes; never unpickled."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save

from bgresample.errors import UserError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    The previous file at ``path`` stays intact until the new one is complete.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        kept = "the previous file is intact" if path.exists() else "nothing was written"
        raise UserError(
            f"could not write {path}: {e.strerror or e}; {kept}. Free disk space or make the "
            "output folder writable, then re-run with --resume"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Save ``tensors`` (made contiguous, on the CPU) with ``meta`` as JSON in the header."""
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, save(flat, metadata={"bgresample": json.dumps(meta)}))


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a safetensors file written by :func:`save_tensors` -> (tensors, meta)."""
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
    return tensors, json.loads(header.get("bgresample", "{}"))


def save_model(
    path: str | Path, model: torch.nn.Module, meta: dict[str, Any] | None = None
) -> None:
    """Save a classifier with its architecture name and class count."""
    info = {"model_name": model.model_name, "num_classes": model.num_classes, **(meta or {})}
    save_tensors(path, model.state_dict(), info)


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


def load_model_state(
    path: str | Path, model: torch.nn.Module, expect: str = "a pre-trained checkpoint"
) -> dict[str, Any]:
    """Load weights into ``model``, refusing a checkpoint of another architecture or class count.

    ``.safetensors`` files written by bgresample carry the architecture and class count; a
    foreign ``.pt`` / ``.pth`` state dict is checked by its tensor names and shapes.
    """
    if Path(path).suffix in (".pt", ".pth"):
        if not Path(path).is_file():
            raise UserError(f"checkpoint {path} not found")
        tensors, meta = load_foreign(path), {}
        name, k = model.model_name, model.num_classes
        own = model.state_dict()
        bad = [n for n, t in tensors.items() if n in own and own[n].shape != t.shape]
        if bad:
            raise UserError(
                f"checkpoint {path} does not fit {model.model_name} with {model.num_classes} "
                f"classes (shape mismatch at {bad[0]}); pass {expect} of the same model and dataset"
            )
    else:
        tensors, meta = load_tensors(path)
        name, k = meta.get("model_name"), meta.get("num_classes")
    if name != model.model_name or k != model.num_classes:
        raise UserError(
            f"checkpoint {path} holds {name} with {k} classes, but this run uses "
            f"{model.model_name} with {model.num_classes} classes; pass {expect} of the same "
            "model and dataset (or --set model.name=" + str(name) + ")"
        )
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise UserError(
            f"checkpoint {path} does not match {model.model_name}: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    return meta


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint without loading its tensors."""
    return load_tensors(path)[1]
