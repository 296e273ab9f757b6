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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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


def load_model_state(
    path: str | Path, model: torch.nn.Module, expect: str = "a pre-trained checkpoint"
) -> dict[str, Any]:
    """Load weights into ``model``, refusing a checkpoint of another architecture or class count."""
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
