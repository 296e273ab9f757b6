"""Hopfield Boosting's training objective (Hofmann et al., NeurIPS 2024; reference code
github.com/ml-jku/hopfield-boosting): a projection head on the penultimate features, and the
mean boosting energy E_b of a mini-batch's projected embeddings with that mini-batch's own
embeddings as the memories (their ``HopfieldTrainer.ood_loss``: memories X = the ID
embeddings, O = the auxiliary embeddings, queries = both, no item left out of its own memory).

Their CIFAR set-up: a 2-layer MLP head 512 -> 256 -> 128 (``encoder/mlp.py``, ReLU between the
layers, PyTorch's default initialisation) on ResNet-18's 512-d features; the optimiser covers
the backbone and the classifier only (``Trainer.__init__``: ``nn.Sequential(model,
classifier).parameters()``), so the head keeps its random initialisation (the gradient still
flows through it into the backbone); beta = 4 and loss weight 0.5
(``resnet-18-cifar-10-aux-from-scratch.yaml``). The loss value here is the mean E_b (paper
sign); their code's value is that plus 2 log(2) / beta (same gradient).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from bgresample.losses.uniformity import Reduction, _reduce
from bgresample.scores.hopfield import DEFAULT_BETA, border_energy

#: Prefix of a model's Hopfield head in its state dict (``model.hopfield``).
PREFIX = "hopfield."


class HopfieldHead(nn.Module):
    """The projection head (Linear(in, hidden), ReLU, Linear(hidden, out)), the inverse
    temperature ``beta`` (a buffer, saved with the model) and, once :meth:`store` has run, the
    stored patterns ``id_patterns`` (X) and ``aux_patterns`` (O) that the ``hopfield`` score
    reads (buffers, saved with the model)."""

    def __init__(
        self, in_dim: int, hidden_dim: int = 256, out_dim: int = 128, beta: float = DEFAULT_BETA
    ) -> None:
        super().__init__()
        self.head = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim)
        )
        self.register_buffer("beta", torch.tensor(float(beta), dtype=torch.float64))

    def forward(self, features: Tensor) -> Tensor:
        """Projected embeddings (not normalised: the energies normalise)."""
        return self.head(features)

    @property
    def has_patterns(self) -> bool:
        return hasattr(self, "id_patterns") and hasattr(self, "aux_patterns")

    def store(self, id_patterns: Tensor, aux_patterns: Tensor) -> None:
        """Keep the projected embeddings ``id_patterns`` (X) and ``aux_patterns`` (O), float32
        on the head's device, replacing any stored before."""
        dim = self.head[-1].out_features
        for name, t in (("id_patterns", id_patterns), ("aux_patterns", aux_patterns)):
            if t.ndim != 2 or t.shape[1] != dim or len(t) == 0:
                raise ValueError(f"{name} must be (N, {dim}) with N >= 1, got {tuple(t.shape)}")
            dev = self.beta.device
            self.register_buffer(name, t.detach().to(device=dev, dtype=torch.float32).clone())


def add_projection_head(
    model: nn.Module,
    hidden_dim: int = 256,
    out_dim: int = 128,
    beta: float = DEFAULT_BETA,
    train: bool = False,
    seed: int | None = None,
) -> HopfieldHead:
    """Give ``model`` (a classifier with ``features`` and a final ``fc`` nn.Linear) a
    :class:`HopfieldHead` as ``model.hopfield`` on ``fc``'s input, initialised as PyTorch's
    nn.Linear does from ``seed`` (None: the global generator; the global state is left as it
    was either way). A model that has one keeps it. ``train``: the head's parameters require
    gradients (fine-tuning's optimiser then updates them); False, the authors' code: they
    stay at their initialisation. Returns the head."""
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear) or not callable(getattr(model, "features", None)):
        name = getattr(model, "model_name", type(model).__name__)
        raise ValueError(
            f"a projection head needs a model with features(x) and a final linear head fc "
            f"(nn.Linear); model {name} has not"
        )
    head = getattr(model, "hopfield", None)
    if not isinstance(head, HopfieldHead):
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            head = HopfieldHead(fc.in_features, hidden_dim, out_dim, beta)
        head.to(device=fc.weight.device)
        model.hopfield = head
    for p in head.parameters():
        p.requires_grad_(train)
    return head


def attach_stored_head(model: nn.Module, shapes: Mapping[str, Sequence[int]]) -> None:
    """Give ``model`` an empty :class:`HopfieldHead` shaped as the one a state dict holds
    (``shapes``: its tensors' shapes by name, e.g. a checkpoint of a model fine-tuned with
    one), so that the state loads; nothing when it holds none."""
    if not any(k.startswith(PREFIX) for k in shapes):
        return
    first, last = shapes[f"{PREFIX}head.0.weight"], shapes[f"{PREFIX}head.2.weight"]
    head = HopfieldHead(int(first[1]), int(first[0]), int(last[0]))
    for name in ("id_patterns", "aux_patterns"):
        if f"{PREFIX}{name}" in shapes:
            head.register_buffer(name, torch.empty(*(int(d) for d in shapes[f"{PREFIX}{name}"])))
    model.hopfield = head


class ProjectedClassifier(nn.Module):
    """``model`` and its Hopfield head in one forward: ``(logits, embeddings)`` with
    ``logits = model.fc(f)`` and ``embeddings = model.hopfield(f)`` of the features
    ``f = model.features(x)`` (what fine-tuning wraps in DDP, so that gradients through both
    outputs are synchronised)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.model.features(x)
        return self.model.fc(feats), self.model.hopfield(feats)


class HopfieldBoostingLoss(nn.Module):
    """The mean boosting energy E_b (:func:`bgresample.scores.hopfield.border_energy`) of the
    queries cat(``emb_id``, ``emb_bg``) with memories X = ``emb_id`` and O = ``emb_bg``
    (Hofmann et al.'s L_OOD); ``memory_id`` / ``memory_aux`` replace the memories (under DDP:
    the embeddings of the whole global batch, gathered with their gradients). ``reduction``
    "none" gives one E_b per query. ``beta``: the inverse temperature; ``head_hidden``,
    ``head_dim``, ``train_head``: the projection head fine-tuning gives the model
    (:meth:`add_head`)."""

    def __init__(
        self,
        beta: float = DEFAULT_BETA,
        head_hidden: int = 256,
        head_dim: int = 128,
        train_head: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be a positive number, got {beta}")
        self.beta, self.reduction = float(beta), reduction
        self.head_hidden, self.head_dim, self.train_head = head_hidden, head_dim, train_head

    def add_head(self, model: nn.Module, seed: int | None = None) -> HopfieldHead:
        """:func:`add_projection_head` with this loss's head options and beta."""
        return add_projection_head(
            model, self.head_hidden, self.head_dim, self.beta, self.train_head, seed
        )

    def forward(
        self,
        emb_id: Tensor,
        emb_bg: Tensor,
        memory_id: Tensor | None = None,
        memory_aux: Tensor | None = None,
    ) -> Tensor:
        if emb_id.ndim != 2 or emb_bg.ndim != 2 or emb_id.shape[1] != emb_bg.shape[1]:
            raise ValueError(
                f"emb_id and emb_bg must be (N, D) embeddings of one D, got "
                f"{tuple(emb_id.shape)} and {tuple(emb_bg.shape)}"
            )
        x = emb_id if memory_id is None else memory_id
        o = emb_bg if memory_aux is None else memory_aux
        e = border_energy(torch.cat([emb_id, emb_bg]), x, o, self.beta)
        return _reduce(e, self.reduction)

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta}, head_hidden={self.head_hidden}, head_dim={self.head_dim}, "
            f"train_head={self.train_head}, reduction={self.reduction!r}"
        )
