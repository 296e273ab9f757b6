"""OOD evaluation with the authors' protocol (docs/method.md): 5 subsamples per OOD set, with MSP or
any of the scores of :mod:`bgresample.scores` side by side."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from bgresample.checkpoint import read_meta
from bgresample.config import EvaluateConfig
from bgresample.data.base import LabeledImages
from bgresample.data.pools import ImageSource
from bgresample.errors import UserError
from bgresample.metrics import (
    accuracy,
    evaluate_protocol,
    flagged_as_ood,
    fpr95_threshold,
    protocol_indices,
)
from bgresample.results import (
    EvalProtocol,
    RunResults,
    ScoreResults,
    ShiftedResults,
    VariantResults,
)
from bgresample.runtime.accel import Accel
from bgresample.runtime.forward import predict_logits, predict_odin, predict_outputs, unwrap
from bgresample.scores import ScoreSpec, get_score, parse_scores

if TYPE_CHECKING:
    from bgresample.engine.benchmark import Benchmark

#: Key suffix, in the saved scores, of the OOD item indices that were scored.
INDEX_SUFFIX = "__idx"
#: The averages of each score of a multi-score evaluation, in ``results.json``'s order.
SCORE_AVERAGES = (
    "average",
    "average_no_noise",
    "average_unshared",
    "average_near",
    "average_far",
)


def whole_sets(cfg: EvaluateConfig, n_id: int, ood: Mapping[str, Any]) -> EvaluateConfig:
    """``cfg`` with a protocol that scores every item of every OOD set once (one repeat)."""
    largest = max((len(s) for s in ood.values()), default=1)
    return replace(cfg, ratio=max(largest, 1) / max(n_id, 1), repeats=1)


def protocol_for(cfg: EvaluateConfig, n_id: int, ood: Mapping[str, Any]) -> EvaluateConfig:
    """The protocol ``evaluate.protocol`` names: the paper's subsamples, or whole sets."""
    return whole_sets(cfg, n_id, ood) if cfg.protocol == "full" else cfg


def _features_fit(
    model: nn.Module,
    specs: Mapping[str, ScoreSpec],
    train: LabeledImages | None,
    accel: Accel,
    batch_size: int,
) -> dict[str, Any]:
    """The fitted ID-train state of each features score (one pass over ``train`` if any)."""
    need = {n: s for n, s in specs.items() if s.needs == "features"}
    if not need:
        return {}
    if train is None:
        raise UserError(
            f"score(s) {', '.join(need)} need the ID training set's features; pass train="
        )
    _, feats = predict_outputs(model, train, accel, batch_size)
    labels = train.targets.cpu()
    states = {}
    for name, spec in need.items():
        assert spec.fit is not None
        state = spec.fit_state(feats, labels, unwrap(model))
        states[name] = state.to(accel.device) if hasattr(state, "to") else state
    return states


def evaluate(
    model: nn.Module,
    test: LabeledImages,
    ood: dict[str, ImageSource],
    cfg: EvaluateConfig,
    *,
    accel: Accel,
    seed: int,
    scores: Sequence[str] | str = ("msp",),
    train: LabeledImages | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    shifted: Mapping[str, LabeledImages] | None = None,
    num_classes: int | None = None,
) -> tuple[VariantResults, dict[str, np.ndarray]]:
    """Accuracy and per-OOD-set FPR95 / AUROC / AUPR (mean, std over repeats), in percent.

    ``scores`` names the OOD scores (see :data:`bgresample.scores.SCORES`); the first is the
    main one. Only the OOD items that the protocol draws are passed through the model, once for
    all logits and feature scores (``model.features`` then ``model.fc`` when a feature score is
    asked for, else the plain forward); ODIN, when asked for, takes a pass of its own with
    gradients. Feature scores (mahalanobis, knn) are fitted once on the features of ``train``
    (the ID training set, without augmentation). ``params`` gives keyword arguments per score,
    e.g. ``{"odin": {"T": 1000, "eps": 0.0014}, "knn": {"k": 50}}``. ``groups`` names groups
    of OOD sets (``unshared``: made by no generator of a pool family; ``near`` / ``far``); the
    average over each group's sets is ``average_<group>`` (None when none of them is here).
    ``shifted`` names labelled covariate-shifted ID sets, reported apart in ``res.shifted``
    (:class:`~bgresample.results.ShiftedResults`, first score): the accuracy on each (over the
    first ``num_classes`` logits when given) and the share flagged as OOD at the FPR95
    threshold (:func:`~bgresample.metrics.fpr95_threshold`), set by the pooled first-score
    scores of every OOD test item scored (each set's drawn items, once each) with OOD positive,
    by the ID test scores with ID positive.

    Returns the results (a ``results.json`` variant: accuracy, score, ood, averages, convention),
    whose ood / averages are those of the first score; with more than one score its ``scores``
    holds every score's ood and averages. Also returns the raw scores for plots: ``id`` (every
    ID test item), and for each OOD set ``SET`` the first score of its drawn items with their
    indices in ``SET__idx``; the other scores are under ``NAME:id`` and ``NAME:SET`` (same
    items, same order).
    """
    names = parse_scores(scores)
    specs = {n: get_score(n) for n in names}
    params = params or {}
    bs = cfg.batch_size
    with_feats = any(s.needs == "features" for s in specs.values())
    states = _features_fit(model, specs, train, accel, bs)

    def score_items(
        images: ImageSource | LabeledImages, indices: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        if with_feats:
            logits, feats = predict_outputs(model, images, accel, bs, indices)
            feats = feats.to(accel.device)
        else:
            logits, feats = predict_logits(model, images, accel, bs, indices=indices), None
        out = {}
        for name, spec in specs.items():
            kw = dict(params.get(name, {}))
            if spec.needs == "logits":
                s = spec.fn(logits, **kw)
            elif spec.needs == "features":
                s = spec.fn(feats, states[name], **kw)
            else:
                s = predict_odin(model, images, accel, bs, indices, **kw)
            out[name] = s.detach().cpu().numpy().astype(np.float64)
        return logits, out

    id_logits, id_scores = score_items(test, None)
    ratio, repeats = cfg.ratio, cfg.repeats
    draws = protocol_indices(len(test), {k: len(v) for k, v in ood.items()}, ratio, repeats, seed)
    ood_scores: dict[str, dict[str, np.ndarray]] = {}
    used_by_set: dict[str, np.ndarray] = {}
    local_draws: dict[str, list[np.ndarray]] = {}
    for name, images in ood.items():
        used = np.unique(np.concatenate(draws[name]))
        _, ood_scores[name] = score_items(images, torch.from_numpy(used))
        used_by_set[name] = used
        local_draws[name] = [np.searchsorted(used, d) for d in draws[name]]

    def protocol(n: str, sets: list[str]) -> dict[str, Any]:
        """Score ``n``'s protocol results over the OOD sets ``sets`` (the same draws)."""
        return evaluate_protocol(
            id_scores[n],
            {k: ood_scores[k][n] for k in sets},
            ratio=ratio,
            repeats=repeats,
            seed=seed,
            convention=cfg.convention,
            draws={k: local_draws[k] for k in sets},
            fpr95=cfg.fpr95,
            ddof=cfg.std_ddof,
        )

    per_score = {n: protocol(n, list(ood)) for n in names}
    for group, members in (groups or {}).items():
        kept = [k for k in ood if k in members]
        for n in names:
            per_score[n][f"average_{group}"] = protocol(n, kept)["average"] if kept else None
    first = names[0]
    raw: dict[str, np.ndarray] = {"id": id_scores[first]}
    for name in ood:
        raw[name] = ood_scores[name][first]
        raw[f"{name}{INDEX_SUFFIX}"] = used_by_set[name]
    for n in names[1:]:
        raw[f"{n}:id"] = id_scores[n]
        for name in ood:
            raw[f"{n}:{name}"] = ood_scores[name][n]
    by_score = {n: ScoreResults.from_json(per_score[n]) for n in names}
    res = VariantResults(
        accuracy=accuracy(id_logits.numpy(), test.targets.cpu().numpy()),
        score=first,
        ood=by_score[first].ood,
        averages=by_score[first].averages,
        convention=cfg.convention,
    )
    if shifted:
        pooled = np.concatenate([ood_scores[k][first] for k in ood])
        t = fpr95_threshold(id_scores[first], pooled, 0.95, cfg.convention, cfg.fpr95)
        res.shifted = {}
        for name, images in shifted.items():
            logits, sc = score_items(images, None)
            logits = logits if num_classes is None else logits[:, :num_classes]
            res.shifted[name] = ShiftedResults(
                accuracy=accuracy(logits.numpy(), images.targets.cpu().numpy()),
                flagged=100.0 * flagged_as_ood(sc[first], t, cfg.convention),
                items=len(images),
            )
    if len(names) > 1:
        res.scores = {
            n: ScoreResults(
                ood=r.ood, averages={k: r.averages[k] for k in SCORE_AVERAGES if k in r.averages}
            )
            for n, r in by_score.items()
        }
    return res, raw


def background_items(checkpoint: str | Path) -> float | None:
    """Background items the model of ``checkpoint`` was fine-tuned on, as the command that wrote
    it recorded: 0 for a pre-trained model; for a fine-tuned one, ``subset_size`` of the
    record beside a ``run``'s checkpoint (``seed_<s>/<variant>.json``) or the working set in
    ``finetune.json`` beside a ``finetune`` stage's. None where no record says."""
    path = Path(checkpoint)
    stage = read_meta(path).get("stage")
    if stage == "pretrain":
        return 0
    record = path.with_suffix(".json")
    if stage != "finetune" or not record.is_file():
        return None
    try:
        d = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict):
        return None
    if "subset_size" in d:
        return d["subset_size"]
    if d.get("background") == "none":
        return 0
    return (d.get("selection") or {}).get("working_set")


def evaluation_results(
    res: VariantResults,
    variant: str,
    scores: Sequence[str],
    cfg: EvaluateConfig,
    bench: Benchmark,
    checkpoint: str | Path,
) -> RunResults:
    """``results.json`` of ``bgresample evaluate``: the one variant ``res`` of ``checkpoint``
    (with the background items it was fine-tuned on, :func:`background_items`), the benchmark,
    its pool size, OOD sets and groups, the protocol and the scores in order."""
    res.subset_size = background_items(checkpoint)
    return RunResults(
        variants={variant: res},
        convention=cfg.convention,
        fpr95=cfg.fpr95,
        checkpoint=str(checkpoint),
        benchmark=bench.name,
        pool_size=len(bench.pool),
        ood_sets=list(bench.ood),
        protocol=EvalProtocol(name=cfg.protocol, ratio=cfg.ratio, repeats=cfg.repeats),
        groups=bench.groups,
        scores=list(scores),
    )
