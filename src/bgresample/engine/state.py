"""Resumable stage state: model, optimisers, schedulers and counters in one safetensors file.

Nested state dicts are split into tensors (stored as safetensors) and a JSON skeleton (stored in
the file's metadata) -- nothing is pickled. Every loop draws its randomness from seeds derived
from ``(seed, step)``, so the step counter is all the RNG state a resume needs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from bgresample import dist
from bgresample.checkpoint import load_tensors, save_tensors

log = logging.getLogger("bgresample")

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
    """Checkpointing of one training stage at ``path`` (``None``: never written)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def save(self, step: int, parts: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        """Write the state at ``step`` atomically (rank 0 only). ``parts`` maps names to
        modules, optimisers or schedulers; ``extra`` is JSON-able."""
        if self.path is None or not dist.info().is_main:
            return
        tensors: dict[str, torch.Tensor] = {}
        skeleton = {}
        for name, part in parts.items():
            skeleton[name] = flatten(part.state_dict(), tensors, name)
        save_tensors(self.path, tensors, {"step": step, "state": skeleton, "extra": extra or {}})

    def load(self, parts: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Restore ``parts`` from the file; returns (step, extra), or (0, {}) if there is none."""
        if self.path is None or not self.path.is_file():
            return 0, {}
        tensors, meta = load_tensors(self.path)
        for name, part in parts.items():
            state = unflatten(meta["state"][name], tensors)
            if isinstance(part, torch.optim.Optimizer):
                state = _int_keys(state)
            part.load_state_dict(state)
        log.info("resumed %s at step %d", self.path.name, meta["step"])
        return int(meta["step"]), meta.get("extra", {})

    def remove(self) -> None:
        if self.path is not None and dist.info().is_main:
            self.path.unlink(missing_ok=True)
