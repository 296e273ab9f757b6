"""OOD evaluation with the authors' protocol (METHOD.md): MSP score, 5 subsamples per OOD set."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from bgresample.data.base import LabeledImages
from bgresample.data.pools import ImageSource
from bgresample.engine.common import Accel, predict_logits
from bgresample.metrics import accuracy, evaluate_protocol, protocol_indices
from bgresample.scores import get_score

#: Key suffix, in the saved scores, of the OOD item indices that were scored.
INDEX_SUFFIX = "__idx"


def evaluate(
    model: nn.Module,
    test: LabeledImages,
    ood: dict[str, ImageSource],
    cfg: dict[str, Any],
    *,
    accel: Accel,
    seed: int,
    score: str = "msp",
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Accuracy and per-OOD-set FPR95 / AUROC / AUPR (mean, std over repeats), in percent.

    Only the OOD items that the protocol draws are passed through the model. Returns the
    results dict (shape of ``results.json`` variants) and the raw scores for plots: ``id`` (every
    ID test item), and for each OOD set ``SET`` the scores of its drawn items with their indices
    in ``SET__idx``.
    """
    score_fn = get_score(score)
    bs = int(cfg.get("batch_size", 1000))
    id_logits = predict_logits(model, test, accel, bs)
    id_scores = score_fn(id_logits).numpy().astype(np.float64)
    ratio, repeats = float(cfg["ratio"]), int(cfg["repeats"])
    draws = protocol_indices(len(test), {k: len(v) for k, v in ood.items()}, ratio, repeats, seed)
    scores: dict[str, np.ndarray] = {"id": id_scores}
    local_draws: dict[str, list[np.ndarray]] = {}
    for name, images in ood.items():
        used = np.unique(np.concatenate(draws[name]))
        logits = predict_logits(model, images, accel, bs, indices=torch.from_numpy(used))
        scores[name] = score_fn(logits).numpy().astype(np.float64)
        scores[f"{name}{INDEX_SUFFIX}"] = used
        local_draws[name] = [np.searchsorted(used, d) for d in draws[name]]
    res = evaluate_protocol(
        id_scores,
        {k: scores[k] for k in ood},
        ratio=ratio,
        repeats=repeats,
        seed=seed,
        convention=cfg.get("convention", "ood-positive"),
        draws=local_draws,
    )
    return {
        "accuracy": accuracy(id_logits.numpy(), test.targets.numpy()),
        "score": score,
        **res,
    }, scores
