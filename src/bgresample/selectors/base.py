"""The selector interface: which background items the fine-tuning loop trains on, and when.

A selector sees the pool (and may score it with the current model) and chooses a *working set*:

- ``refresh = "once"``: one static subset for the whole run (:meth:`Selector.select_once`);
- ``refresh = "epoch"``: a fresh working set every background epoch (:meth:`Selector.select_epoch`);
- ``refresh = "batch"``: the items of every background batch (:meth:`Selector.select_batch`).

Budget (the same for every selector): at most ``k = round(gamma N)`` distinct pool items are
eligible in any background epoch, and every selector trains on the same number of background
draws (``background_batch_size`` per step, the same steps). A background epoch is
``ceil(k / background_batch_size)`` steps, one pass over a working set of k items, as in ATOM /
NTOM, whose epoch trains once on the M outliers it selected. Static and epoch selectors draw
each batch uniformly with replacement from their working set; a batch selector picks from a
uniformly random k-subset of the pool drawn anew each background epoch. Only ``full`` (the
paper's 100% reference) ignores gamma.

Cost: forward passes over pool items spent on choosing, before fine-tuning (``setup``, e.g.
Algorithm 1) and during it (``during``), and over ID items (``id``, POEM's posterior update);
``setup_fwd_eq`` is the setup in forward-pass equivalents (a backward counted as two forwards:
Algorithm 1 trains on ID and pool items, 6 per pool item), and ``seconds`` the measured wall
time of choosing (the setup's and the selector's own calls during fine-tuning).

Every choice is a function of ``(seed, step or epoch)`` and of the model at that point, drawn
from the streams of :mod:`bgresample.rng`; pool scores are computed in shards and gathered,
so every torchrun rank makes the same global selection. A selector's state (working set,
counters, posterior) is saved with the fine-tuning state, so runs resume exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from bgresample.data.base import LabeledImages
from bgresample.data.pools import ImageSource
from bgresample.errors import UserError
from bgresample.options import make_options
from bgresample.resampling.selection import subset_size
from bgresample.rng import Stream, generator
from bgresample.runtime.accel import Accel
from bgresample.runtime.batches import ShuffledPasses, uniform_batch
from bgresample.runtime.forward import predict_outputs
from bgresample.scores import get_score

Refresh = Literal["once", "epoch", "batch"]


@dataclass
class SelectionContext:
    """What a selector may look at: the data, the budget and the run's seed.

    ``weights`` are learned background weights (Algorithm 1) for the weight-based selectors,
    ``weights_cost`` the pool forward passes that learning them took, ``weights_fwd_eq`` the
    same in forward-pass equivalents and ``weights_seconds`` its wall time. ``id_batch_size``:
    fine-tuning's ID batch size (a selector refreshed once per ID epoch needs it); ``flip`` /
    ``background_flip``: whether ID / pool images are flipped in augmentation (a selector that
    embeds augmented images, as fine-tuning augments them).
    """

    pool: ImageSource
    train: LabeledImages
    accel: Accel
    seed: int
    gamma: float
    batch_size: int
    score: str = "msp"
    score_batch_size: int = 1000
    order: Literal["replacement", "shuffle"] = "replacement"
    weights: Tensor | None = None
    weights_cost: int = 0
    weights_fwd_eq: int = 0
    weights_seconds: float = 0.0
    id_batch_size: int | None = None
    flip: bool = False
    background_flip: bool = False

    @property
    def budget(self) -> int:
        """k = round(gamma N), at least 1: distinct items eligible per background epoch."""
        return subset_size(len(self.pool), self.gamma)

    @property
    def epoch_steps(self) -> int:
        """Steps of one background epoch: ceil(k / background batch size)."""
        return math.ceil(self.budget / self.batch_size)


#: What a selector may need besides the pool: ``weights`` (Algorithm 1 runs first and fills
#: ``SelectionContext.weights``), ``features`` (the model's penultimate features, so a model
#: that cannot split them is refused), ``model`` (it scores the pool with the current model).
NEEDS = ("weights", "features", "model")


class Selector:
    """Base class: a selector declares itself in its class and implements the hook that
    matches its ``refresh``.

    - ``name`` and ``refresh`` (``once``, ``epoch`` or ``batch``);
    - ``Options``: a dataclass of its keyword options with their defaults and range checks
      (:func:`bgresample.options.option`), or None; the config section ``selectors.NAME`` is
      built from it (unless ``config_section`` is False);
    - ``needs``: a subset of :data:`NEEDS`;
    - ``streams``: its random streams, ``{purpose: number}``; numbers are part of every seed's
      results (never renumber) and distinct across selectors and :class:`bgresample.rng.Stream`.

    :func:`bgresample.selectors.register_selector` checks the declaration and makes the selector
    a variant of ``run`` / ``compare-selectors`` / ``finetune``. The fine-tuning loop calls
    :meth:`background` once per step; it refreshes the working set when due, draws the batch and
    counts the distinct items trained on.
    """

    name: ClassVar[str]
    refresh: ClassVar[Refresh]
    Options: ClassVar[type | None] = None
    config_section: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset()
    streams: ClassVar[dict[str, int]] = {}
    summary_line: ClassVar[str] = ""

    def __init__(self, ctx: SelectionContext, **options: Any) -> None:
        self.opts = self.make_options(**options)
        self.ctx = ctx
        self.used = torch.zeros(len(ctx.pool), dtype=torch.bool)
        self.forwards = {"setup": 0, "during": 0, "id": 0}
        self.setup_fwd_eq = 0
        self.seconds = 0.0
        self.working = torch.empty(0, dtype=torch.long)
        self.epoch = -1
        self._shuffled = ShuffledPasses(ctx.batch_size, ctx.seed)

    @classmethod
    def make_options(cls, **options: Any) -> Any:
        """The ``Options`` of these keyword options (defaults filled in, ranges checked), or
        None for a selector without options; ValueError names an unknown or invalid one."""
        return make_options(cls.Options, options, f"selector {cls.name!r}", f"selectors.{cls.name}")

    def rng(self, purpose: str, key: int = 0) -> torch.Generator:
        """The generator of this selector's stream ``purpose`` at ``key`` (a step or epoch)."""
        return generator(self.ctx.seed, self.streams[purpose], key)

    @property
    def static(self) -> bool:
        """Whether the batches do not depend on the model (they can be read ahead)."""
        return self.refresh == "once"

    @property
    def refresh_steps(self) -> int:
        """Steps between the working sets of an ``epoch`` selector: one background epoch
        (:attr:`SelectionContext.epoch_steps`) unless the selector says otherwise."""
        return self.ctx.epoch_steps

    def select_once(self) -> Tensor:
        """The static subset (pool indices) of a ``once`` selector."""
        raise NotImplementedError

    def select_epoch(self, model: nn.Module, epoch: int) -> Tensor:
        """The working set (pool indices) of background epoch ``epoch``."""
        raise NotImplementedError

    def select_batch(self, model: nn.Module, step: int) -> Tensor:
        """The ``batch_size`` pool indices of the background batch at ``step``."""
        raise NotImplementedError

    def background(self, model: nn.Module, step: int) -> Tensor:
        """The global background batch at ``step`` (pool indices, CPU); its wall time is
        counted in ``seconds``."""
        t0 = time.perf_counter()
        idx = self._background(model, step)
        self.seconds += time.perf_counter() - t0
        return idx

    def _background(self, model: nn.Module, step: int) -> Tensor:
        if self.refresh == "batch":
            idx = self.select_batch(model, step)
        else:
            epoch = 0 if self.refresh == "once" else step // self.refresh_steps
            if epoch != self.epoch:
                once = self.refresh == "once"
                self.working = self.select_once() if once else self.select_epoch(model, epoch)
                self.epoch = epoch
                if len(self.working) == 0:
                    raise UserError(f"selector {self.name} chose no background items")
            if self.ctx.order == "shuffle":
                first = 0 if self.refresh == "once" else epoch * self.refresh_steps
                pick = self._shuffled.at(len(self.working), first, step)
            else:
                pick = uniform_batch(
                    len(self.working), self.ctx.batch_size, self.ctx.seed, Stream.BACKGROUND, step
                )
            idx = self.working[pick]
        self.used[idx] = True
        return idx

    def summary(self) -> dict[str, Any]:
        """Budget, cost counters and the number of distinct items trained on."""
        return {
            "selector": self.name,
            "refresh": self.refresh,
            "budget": self.ctx.budget,
            "working_set": len(self.working) if self.refresh != "batch" else self.ctx.budget,
            "forwards": dict(self.forwards),
            "setup_fwd_eq": self.setup_fwd_eq,
            "seconds": self.seconds,
            "distinct_items": int(self.used.sum()),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "used": self.used,
            "working": self.working,
            "epoch": self.epoch,
            "forwards": dict(self.forwards),
            "seconds": self.seconds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.used = state["used"].clone()
        self.working = state["working"].clone()
        self.epoch = int(state["epoch"])
        self.forwards = {k: int(v) for k, v in state["forwards"].items()}
        self.seconds = float(state.get("seconds", 0.0))

    def candidates(self, n: int, purpose: str, key: int) -> Tensor:
        """``n`` distinct pool indices drawn uniformly (stream ``purpose`` at ``key``)."""
        perm = torch.randperm(len(self.ctx.pool), generator=self.rng(purpose, key))
        return perm[:n]

    def outputs(
        self, model: nn.Module, idx: Tensor, images: ImageSource | LabeledImages | None = None
    ) -> tuple[Tensor, Tensor]:
        """Penultimate features and logits (float32, CPU, eval mode, gathered over ranks) of pool
        items ``idx`` (or of ``images[idx]``), counted as cost."""
        of_pool = images is None
        source = self.ctx.pool if of_pool else images
        logits, feats = predict_outputs(
            model, source, self.ctx.accel, self.ctx.score_batch_size, idx
        )
        self.forwards["during" if of_pool else "id"] += len(idx)
        return feats, logits

    def id_scores(self, logits: Tensor) -> Tensor:
        """The context's OOD score of ``logits``; higher = more in-distribution."""
        spec = get_score(self.ctx.score)
        if spec.needs != "logits":
            raise UserError(
                f"selectors score by logits; {self.ctx.score!r} needs {spec.needs} "
                "(fix with --set selectors.score=msp)"
            )
        return spec(logits)
