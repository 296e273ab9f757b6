"""``bgresample plan``: the stages of an experiment (``run``), the optimiser steps of each and an
estimate of their time on this device, from a few timed steps on random data.

Dataset sizes are those of the data when it is there, else the nominal sizes that each dataset
kind declares (``Kind.nominal``, :mod:`bgresample.data.kinds`), so that a run can be sized before
anything is downloaded. Step counts follow the engine exactly: pre-training once
(:mod:`~bgresample.engine.pretrain`), per seed Algorithm 1 once when a variant needs the weights
(:mod:`~bgresample.engine.resample`), and fine-tuning and evaluation per variant
(:mod:`~bgresample.engine.experiment`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from bgresample.config import Config
from bgresample.data import kinds
from bgresample.data.embedded import EmbeddedConfig, default_data_root, load_embedded
from bgresample.data.transforms import CropFlip
from bgresample.engine.benchmark import (
    SKIP_INTEGRITY_ENV,
    _unique,
    check_pool_given,
    mnist_config,
    noise_size,
    resolve_flip,
    user_set_name,
)
from bgresample.engine.experiment import build_model, finetune_section, loss_options
from bgresample.engine.finetune import background_objective
from bgresample.engine.resample import algorithm1_step, refresh_period, resample_steps
from bgresample.errors import UserError
from bgresample.losses import BACKGROUND_LOSSES, add_background_class
from bgresample.metrics import protocol_indices
from bgresample.resampling import BackgroundResampler
from bgresample.runtime.accel import Accel
from bgresample.runtime.batches import steps_per_epoch
from bgresample.runtime.forward import ce, joint_forward
from bgresample.runtime.optim import sgd, sgd_step
from bgresample.selectors import NONE, selector_needs, weight_selectors

#: Assumed size of a missing OOD set whose kind declares no nominal size.
UNKNOWN_OOD = 10_000
#: Untimed steps before the timed ones (the first steps allocate and pick kernels, on CPUs too).
WARMUP = 3
#: Largest pool whose weights are allocated to time Algorithm 1, on the CPU and on CUDA; a
#: larger pool's O(N) weight pass is timed at this size and scaled.
TIMED_POOL_CAP = {False: 300_000, True: 100_000_000}
#: On a CPU, a model whose pre-training step is predicted to take longer than this (s) is timed
#: on batches of at most :data:`CPU_TIMED_BATCH` images and scaled linearly to the real batch
#: (a CPU's time per step grows about linearly with the batch), so that ``plan`` for a WRN
#: preset takes seconds, not many minutes.
CPU_SLOW_STEP = 1.0
CPU_TIMED_BATCH = 16
#: Sources, per data item.
REAL, NOMINAL, GENERATED = "data", "nominal", "generated"


@dataclass
class Sizes:
    """What the step counts depend on: ID train (after the validation split), validation and
    test sizes, classes; pool items trained on and held out; OOD set sizes; where each came
    from (``sources``: ``data`` / ``nominal`` / ``generated``)."""

    train: int
    test: int
    classes: int
    pool: int
    ood: dict[str, int]
    val: int = 0
    holdout: int = 0
    #: Items of the built-in benchmark's own validation OOD sets (beside an ID validation split).
    val_ood: int = 0
    sources: dict[str, str] = field(default_factory=dict)
    #: Covariate-shifted ID sets evaluated beside the OOD sets (the MNIST benchmark's).
    shifted: dict[str, int] = field(default_factory=dict)


@dataclass
class Stage:
    """One row of the plan: ``runs`` runs of ``steps`` steps each, timed as step kind ``kind``;
    ``extra`` is a per-stage time (s) added once per run (e.g. sampler refreshes)."""

    name: str
    kind: str
    runs: int
    steps: int
    batch: int
    extra: float = 0.0
    items: int = 0
    seconds_per_step: float = 0.0

    @property
    def seconds(self) -> float:
        return self.runs * (self.steps * self.seconds_per_step + self.extra)


# -- dataset sizes ---------------------------------------------------------------------------------


def _check_integrity() -> bool:
    """Whether md5 sums are checked (as by ``run``: unless SKIP_INTEGRITY_ENV is "1")."""
    return os.environ.get(SKIP_INTEGRITY_ENV) != "1"


def _held(n: int, fraction: float) -> int:
    """Items ``validation._split`` holds out of ``n``."""
    return round(fraction * n) if fraction > 0 else 0


def _size(kind: str, role: str, path: str | None, root: str, **options: Any) -> Any:
    """What the kind counts of the data at ``path`` (:meth:`~bgresample.data.kinds.Kind.size`),
    None where it is missing or unreadable."""
    k = kinds.get_kind(kind, role)
    opts = kinds.LoadOptions(check_integrity=_check_integrity(), **options)
    try:
        return k.size(role, kinds.resolve_path(k, path, root), opts)
    except (UserError, OSError, RuntimeError, ValueError):
        return None


def _id_counts(kind: str, path: str | None, root: str) -> tuple[list[int], int, int] | None:
    """(per-class training counts, test size, classes) of ID data on disk, None when missing."""
    found = _size(kind, "id", path, root)
    if found is None:
        return None
    targets, n_test, n_cls = found
    return np.bincount(np.asarray(targets, dtype=np.int64)).tolist(), n_test, n_cls


def _ood_size(kind: str, path: str | None, root: str) -> int | None:
    if not kinds.get_kind(kind, "ood").needs_path:
        return None  # generated: sized by data.embedded.noise_ood_size
    if "id" in kinds.KINDS[kind].roles:  # the test split of an ID kind
        found = _id_counts(kind, path, root)
        return None if found is None else found[1]
    return _size(kind, "ood", path, root)


@dataclass
class _BuiltInSizes:
    """A built-in benchmark's sizes as :func:`data_sizes` reads them: per-class training counts,
    test size, classes, pool, OOD sets (name -> size, in load order), shifted ID sets, and where
    they came from (``generated`` for the embedded benchmark; ``data`` from the MNIST
    benchmark's cache, else ``nominal``)."""

    counts: list[int]
    test: int
    classes: int
    pool: int
    ood: dict[str, int]
    shifted: dict[str, int]
    source: str
    #: Items of the benchmark's own validation OOD sets (the embedded ``val-glyphs``).
    val_ood: int = 0


def _embedded_sizes(data: Any, root: str) -> _BuiltInSizes:
    emb = asdict(data.embedded)
    seed = emb.pop("seed")
    embedded = load_embedded(root, seed=seed, config=EmbeddedConfig(**emb))
    return _BuiltInSizes(
        counts=np.bincount(embedded.train.targets.numpy()).tolist(),
        test=len(embedded.test),
        classes=len(embedded.classes),
        pool=len(embedded.pool),
        ood={name: len(images) for name, images in embedded.ood.items()},
        shifted={},
        source=GENERATED,
        val_ood=sum(len(images) for images in embedded.val_ood.values()),
    )


def _mnist_sizes(data: Any, root: str, notes: list[str]) -> _BuiltInSizes:
    """The MNIST benchmark's sizes from its cache (``meta.json`` and the training labels), else
    the nominal ones of its sources; nothing is built or fetched."""
    from bgresample.data import mnist_bench as mb

    seed, config = mnist_config(data)
    id_dir, sets_dir = mb.cache_dirs(root, seed, config)
    noise = {name: config.noise_ood_size for name in mb.NOISE_OOD}
    try:
        shapes = {
            **json.loads((id_dir / "meta.json").read_text())["shapes"],
            **json.loads((sets_dir / "meta.json").read_text())["shapes"],
        }
        labels = np.load(id_dir / "train_y.npy", allow_pickle=False)
        found = {
            "counts": np.bincount(labels, minlength=10).tolist(),
            "test": shapes["test_y"][0],
            "pool": shapes["pool_x"][0],
            "ood": {n: noise.get(n) or shapes[f"ood_{n}"][0] for n in mb.OOD_SETS},
            "shifted": {n: shapes[f"{n}_y"][0] for n in mb.SHIFTED_SETS},
        }
        return _BuiltInSizes(classes=10, source=REAL, **found)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass
    if config.id_source == "mnist":
        n_train, n_test = mb.NOMINAL_SIZES["train"], mb.NOMINAL_SIZES["test"]
    else:  # 500 a class, split per class
        n_test = 10 * round(500 * config.test_fraction)
        n_train = 5000 - n_test
    nominal = {n: mb.NOMINAL_SIZES.get(n, config.ood_size) for n in mb.OOD_SETS}
    notes.append(
        f"the MNIST benchmark is not built under {root} yet: nominal sizes (it is built on the "
        "first run, from the sources `bgresample datasets --download --preset mnist` fetches)"
    )
    return _BuiltInSizes(
        counts=[n_train // 10] * 10,
        test=n_test,
        classes=10,
        pool=config.pool_size,
        ood={**nominal, **noise},
        shifted={n: mb.NOMINAL_SIZES[n] for n in mb.SHIFTED_SETS},
        source=NOMINAL,
    )


def data_sizes(cfg: Config) -> tuple[Sizes, list[str]]:
    """The sizes the config implies (real where the data is found) and notes on the guesses."""
    data, notes = cfg.data, []
    root = data.root if data.root is not None else str(default_data_root())
    sources: dict[str, str] = {}
    builtin = None
    check_pool_given(data)
    if data.id is None or data.background is None:
        if data.id is None and data.benchmark == "mnist":
            builtin = _mnist_sizes(data, root, notes)
        else:
            builtin = _embedded_sizes(data, root)
    if data.id is None:
        assert builtin is not None
        counts, n_test, n_cls = builtin.counts, builtin.test, builtin.classes
        sources["id"] = builtin.source
    else:
        kind, path = kinds.parse_spec(data.id)
        found = _id_counts(kind, path, root)
        sources["id"] = REAL if found is not None else NOMINAL
        if found is None:
            nominal = kinds.get_kind(kind, "id").nominal.get("id")
            if nominal is None:
                raise UserError(f"ID data {data.id} not found; plan needs it to know its size")
            n_train, n_test, n_cls = nominal
            counts = [n_train // n_cls] * n_cls
            notes.append(f"ID {kind} not found: nominal {n_train:,} train / {n_test:,} test")
        else:
            counts, n_test, n_cls = found
    val = sum(_held(c, data.validation.id_fraction) for c in counts)
    if data.background is None:
        assert builtin is not None
        n_pool, sources["pool"] = builtin.pool, builtin.source
    else:
        kind, path = kinds.parse_spec(data.background)
        got = _size(kind, "background", path, root, allow_cifar_overlap=data.allow_cifar_overlap)
        sources["pool"] = REAL if got is not None else NOMINAL
        if got is None:
            got = kinds.get_kind(kind, "background").nominal.get("background")
            if got is None:
                known = [k.name for k in kinds.KINDS.values() if "background" in k.nominal]
                raise UserError(
                    f"background {data.background} not found; plan needs its size (kinds of known "
                    f"size: {', '.join(known)})"
                )
            extra = " (before the CIFAR exclusions)" if kind == "tinyimages" else ""
            notes.append(f"background {kind} not found: nominal {got:,} items{extra}")
        n_pool = got
        if kinds.KINDS[kind].decodes:
            notes.append("the pool's images are decoded from files: decoding is not timed")
    holdout = _held(n_pool, data.validation.pool_fraction)
    own = builtin if data.id is None else None
    ood = _ood_sizes(cfg, root, own, sources, notes)
    sizes = Sizes(
        train=sum(counts) - val,
        test=n_test,
        classes=n_cls,
        pool=n_pool - holdout,
        ood=ood,
        val=val,
        holdout=holdout,
        val_ood=0 if own is None or not val else own.val_ood,
        sources=sources,
        shifted={} if own is None else dict(own.shifted),
    )
    return sizes, notes


def _ood_sizes(
    cfg: Config,
    root: str,
    builtin: _BuiltInSizes | None,
    sources: dict[str, str],
    notes: list[str],
) -> dict[str, int]:
    """Sizes of the OOD test sets, named as :func:`~bgresample.engine.benchmark.load_benchmark`
    names them."""
    wanted = cfg.evaluate.ood
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    out: dict[str, int] = {}
    for spec in wanted:
        if builtin is not None and spec == "all":
            for name, n in builtin.ood.items():
                out[name], sources[f"ood:{name}"] = n, builtin.source
            continue
        if builtin is not None and spec in builtin.ood:
            out[spec], sources[f"ood:{spec}"] = builtin.ood[spec], builtin.source
            continue
        if spec == "all":
            raise UserError(
                "evaluate.ood=all needs the embedded ID data; name the OOD sets with --ood"
            )
        kind, path = kinds.parse_spec(spec)
        name = user_set_name(kind, path) or _unique(kind, out)
        got = _ood_size(kind, path, root)
        if got is not None:
            out[name], sources[f"ood:{name}"] = got, REAL
        elif not kinds.get_kind(kind, "ood").needs_path:
            out[name], sources[f"ood:{name}"] = noise_size(cfg.data), GENERATED
        else:
            nominal = kinds.get_kind(kind, "ood").nominal.get("ood")
            out[name], sources[f"ood:{name}"] = nominal or UNKNOWN_OOD, NOMINAL
            what = "nominal" if nominal else "size unknown, assumed"
            notes.append(f"OOD {spec} not found: {what} {out[name]:,} images")
    if not out:
        raise UserError("no OOD test set given; pass --ood NAME or KIND:PATH (repeatable)")
    return out


# -- stages and steps ------------------------------------------------------------------------------


def eval_items(cfg: Config, sizes: Sizes) -> list[int]:
    """The sizes of the forward passes of one evaluation of a variant: ID test, each OOD set's
    drawn items (``evaluate.protocol``), the validation sets, and for ``extra_class`` the
    accuracy pass."""
    ev = cfg.evaluate
    if ev.protocol == "full":
        ood = list(sizes.ood.values())
    else:
        draws = protocol_indices(sizes.test, sizes.ood, ev.ratio, ev.repeats, cfg.seed)
        ood = [len(np.unique(np.concatenate(d))) for d in draws.values()]
    passes = [sizes.test, *ood]
    if sizes.val and (sizes.holdout or sizes.val_ood):  # as load_benchmark builds val_ood
        passes += [sizes.val, *(n for n in (sizes.holdout, sizes.val_ood) if n)]
    passes += list(sizes.shifted.values())
    if BACKGROUND_LOSSES[finetune_section(cfg).loss].extra_class:
        passes.append(sizes.test)
    return passes


def stages(cfg: Config, sizes: Sizes) -> list[Stage]:
    """The stages of ``run`` with their runs and steps (no timing)."""
    pre, rs, ft = cfg.pretrain, cfg.resample, finetune_section(cfg)
    seeds, variants = cfg.run.seeds, list(cfg.run.variants)
    out = [
        Stage(
            "pretrain",
            "pretrain",
            1,
            pre.epochs * steps_per_epoch(sizes.train, pre.batch_size, pre.drop_last),
            pre.batch_size,
        )
    ]
    if weight_selectors(variants):
        steps = resample_steps(rs, sizes.pool, sizes.train)
        out.append(Stage("resample", "resample", seeds, steps, rs.batch_size))
    ft_steps = ft.epochs * steps_per_epoch(sizes.train, ft.batch_size)
    for v in variants:
        kind = "finetune-id" if v == NONE else "finetune"
        out.append(Stage(f"finetune[{v}]", kind, seeds, ft_steps, ft.batch_size))
    passes = eval_items(cfg, sizes)
    bs = cfg.evaluate.batch_size
    batches = sum(math.ceil(n / bs) for n in passes)
    out.append(Stage("evaluate", "evaluate", seeds * len(variants), batches, bs, items=sum(passes)))
    return out


# -- timing ---------------------------------------------------------------------------------------


class _Timer:
    """Random batches and timed steps on the configured device and model."""

    def __init__(self, cfg: Config, classes: int, steps: int, warmup: int | None) -> None:
        self.cfg, self.classes, self.steps = cfg, classes, max(steps, 1)
        self.accel = Accel.from_config(cfg.device, cfg.accel, cfg.data.workers, cfg.data)
        self.warmup = WARMUP if warmup is None else warmup
        self.gen = torch.Generator().manual_seed(cfg.seed)
        kind = None if cfg.data.id is None else kinds.parse_spec(cfg.data.id)[0]
        self.flip = resolve_flip(cfg.data.flip, kind)
        self.cap = self._cpu_cap()

    def _cpu_cap(self) -> int | None:
        """:data:`CPU_TIMED_BATCH` where a full pre-training step on this CPU would be slow
        (one warm-up and one timed step of that many images, scaled), else None (timed as is)."""
        if self.accel.device.type != "cpu":
            return None
        n = CPU_TIMED_BATCH
        model, net = self.model()
        opt = sgd(model, 0.0, 0.0, 0.0)
        model.train()
        x, y = self.images(n), self.labels(n)
        seconds = self.time(lambda: sgd_step(opt, ce(net(x), y)), warmup=1, steps=1)
        return n if seconds * self.cfg.pretrain.batch_size / n > CPU_SLOW_STEP else None

    def batch(self, *sizes: int) -> tuple[list[int], float]:
        """The batch sizes to time for the real ``sizes`` and the factor that scales the timed
        step to the real one (1 unless :attr:`cap` applies)."""
        if self.cap is None:
            return list(sizes), 1.0
        timed = [min(n, self.cap) for n in sizes]
        return timed, sum(sizes) / sum(timed)

    def sync(self) -> None:
        if self.accel.device.type == "cuda":
            torch.cuda.synchronize(self.accel.device)

    def model(self, extra_class: bool = False) -> tuple[torch.nn.Module, torch.nn.Module]:
        torch.manual_seed(self.cfg.seed)
        model = build_model(self.cfg, self.classes)
        if extra_class:
            try:
                add_background_class(model, self.classes)
            except ValueError as e:
                raise UserError(f"finetune.loss=extra_class: {e}") from None
        return model, self.accel.model(model)

    def images(self, n: int, aug: bool = True) -> torch.Tensor:
        raw = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=self.gen)
        crop = CropFlip.draw(n, self.gen, flip=self.flip) if aug else None
        return self.accel.ready(raw, crop)

    def labels(self, n: int) -> torch.Tensor:
        return torch.randint(self.classes, (n,), generator=self.gen).to(self.accel.device)

    def time(
        self, fn: Callable[[], Any], warmup: int | None = None, steps: int | None = None
    ) -> float:
        """Median seconds of a call of ``fn`` (each timed alone) after warm-up calls."""
        for _ in range(self.warmup if warmup is None else warmup):
            fn()
        times = []
        for _ in range(self.steps if steps is None else steps):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    def pretrain(self) -> float:
        p = self.cfg.pretrain
        model, net = self.model()
        opt = sgd(model, p.lr, p.momentum, p.weight_decay)
        model.train()
        (n,), scale = self.batch(p.batch_size)

        def step() -> None:
            x, y = self.images(n), self.labels(n)
            with self.accel.autocast():
                logits = net(x)
            sgd_step(opt, ce(logits, y))

        return self.time(step) * scale

    def finetune(self, background: bool) -> float:
        ft = finetune_section(self.cfg)
        model, net = self.model(BACKGROUND_LOSSES[ft.loss].extra_class)
        objective = background_objective(ft.loss, loss_options(self.cfg))
        opt = sgd(model, ft.lr, ft.momentum, ft.weight_decay)
        model.train(not ft.freeze_bn)
        sizes = (ft.batch_size, ft.background_batch_size) if background else (ft.batch_size,)
        (n, *bg), scale = self.batch(*sizes)

        def step() -> None:
            x, y = self.images(n), self.labels(n)
            x_bg = self.images(bg[0]) if bg else None
            with self.accel.autocast():
                li, lb = joint_forward(net, x, x_bg)
            l_out = objective(li.float(), lb.float()) if lb is not None else 0.0
            sgd_step(opt, ce(li, y) + ft.alpha * l_out)

        return self.time(step) * scale

    def resample(self, pool: int, train: int) -> tuple[float, float, int]:
        """(s per Algorithm 1 step, s per sampler refresh, steps between refreshes). Pools over
        :data:`TIMED_POOL_CAP` are timed at the cap, their O(N) weight pass scaled to ``pool``."""
        rs, accel = self.cfg.resample, self.accel
        model, net = self.model()
        timed = min(pool, TIMED_POOL_CAP[accel.device.type == "cuda"])
        resampler = BackgroundResampler(
            timed,
            eps=rs.eps,
            lr=rs.lr_w,
            momentum=rs.momentum_w,
            refresh_every=refresh_period(rs, train),
            device=accel.device,
            compile=accel.compile_weights,
        )
        opt = sgd(model, rs.lr, rs.momentum, rs.weight_decay)
        outlier = BACKGROUND_LOSSES[rs.loss].module(reduction="none")
        scale = rs.alpha if rs.weight_loss == "scaled" else 1.0
        model.train(not rs.freeze_bn)
        (n, _), factor = self.batch(rs.batch_size, rs.batch_size)
        idx = resampler.draw(n, self.gen)

        def step() -> None:
            x, y, x_bg = self.images(n), self.labels(n), self.images(n)
            algorithm1_step(
                net,
                resampler,
                opt,
                x,
                y,
                x_bg,
                resampler.draw(n, self.gen),
                rs.alpha,
                outlier,
                accel,
                0,
                scale,
            )

        per_step = self.time(step) * factor
        refresh = self.time(resampler.refresh, warmup=0, steps=1)
        if timed < pool:  # the weight pass and the refresh are O(N)
            losses = torch.rand(n, device=accel.device)
            weights = self.time(lambda: resampler.step(idx, losses))
            per_step += weights * (pool / timed - 1)
            refresh *= pool / timed
        return per_step, refresh, refresh_period(rs, train) or max(pool // n, 1)

    def evaluate(self) -> float:
        """Seconds per image of the evaluation's forward pass (batches of evaluate.batch_size)."""
        (bs,), _ = self.batch(self.cfg.evaluate.batch_size)
        model, net = self.model()
        model.eval()
        x = self.images(bs, aug=False)

        def forward() -> None:
            with torch.no_grad(), self.accel.autocast():
                net(x)

        return self.time(forward, warmup=1, steps=min(self.steps, 3)) / bs


def plan(
    cfg: Config, steps: int = 5, warmup: int | None = None, sizes: Sizes | None = None
) -> dict[str, Any]:
    """The plan of ``run`` for ``cfg``: sizes, stages with measured seconds per step, total."""
    notes: list[str] = []
    if sizes is None:
        sizes, notes = data_sizes(cfg)
    rows = stages(cfg, sizes)
    timer = _Timer(cfg, sizes.classes, steps, warmup)
    kinds_needed = {s.kind for s in rows}
    per_step: dict[str, float] = {"pretrain": timer.pretrain()}
    refresh_note = None
    if "resample" in kinds_needed:
        step_s, refresh_s, period = timer.resample(sizes.pool, sizes.train)
        per_step["resample"] = step_s
        for s in rows:
            if s.kind == "resample":
                s.extra = refresh_s * math.ceil(s.steps / period)
        refresh_note = f"resample: sampler refresh every {period:,} steps, {refresh_s:.3g} s each"
        cap = TIMED_POOL_CAP[timer.accel.device.type == "cuda"]
        if sizes.pool > cap:
            refresh_note += f"; timed on {cap:,} weights, the O(N) weight pass scaled to the pool"
    if "finetune" in kinds_needed:
        per_step["finetune"] = timer.finetune(background=True)
    if "finetune-id" in kinds_needed:
        per_step["finetune-id"] = timer.finetune(background=False)
    per_step["evaluate"] = timer.evaluate() * cfg.evaluate.batch_size
    for s in rows:
        s.seconds_per_step = per_step[s.kind]
    if refresh_note:
        notes.append(refresh_note)
    if timer.cap is not None:
        notes.append(
            f"a full step of this model is slow on this CPU: steps timed on batches of at most "
            f"{timer.cap} images and scaled linearly to the real batch sizes"
        )
    # selectors that score the pool with the model during fine-tuning
    others = [v for v in cfg.run.variants if selector_needs(v, "model")]
    if others:
        notes.append(f"the scoring passes of {', '.join(others)} over the pool are not counted")
    accel = timer.accel
    return {
        "model": cfg.model.name,
        "device": str(accel.device),
        "amp": accel.amp,
        "seeds": cfg.run.seeds,
        "variants": list(cfg.run.variants),
        "timed_steps": timer.steps,
        "timed_batch_cap": timer.cap,
        "sizes": asdict(sizes),
        "stages": [
            {
                "stage": s.name,
                "runs": s.runs,
                "steps": s.steps,
                "batch": s.batch,
                "seconds_per_step": s.seconds_per_step,
                "extra_seconds_per_run": s.extra,
                **({"images": s.items} if s.items else {}),
                "seconds": s.seconds,
            }
            for s in rows
        ],
        "total_seconds": sum(s.seconds for s in rows),
        "notes": notes,
    }


def duration(seconds: float) -> str:
    """``seconds`` in a readable unit."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def plan_text(p: dict[str, Any]) -> str:
    """The plan as a table, with the data sizes and notes."""
    z = p["sizes"]
    src = z["sources"]
    ood = ", ".join(f"{k} {v:,}" for k, v in z["ood"].items())
    lines = [
        f"model {p['model']} on {p['device']}{' (bf16 autocast)' if p['amp'] else ''}; "
        f"{p['seeds']} seeds x variants {', '.join(p['variants'])}; "
        f"{p['timed_steps']} timed steps per stage",
        f"ID:   {z['train']:,} train (+{z['val']:,} validation), {z['test']:,} test, "
        f"{z['classes']} classes [{src['id']}]",
        f"pool: {z['pool']:,} items (+{z['holdout']:,} held out) [{src['pool']}]",
        f"OOD:  {ood}",
        *(
            [f"shifted ID: {', '.join(f'{k} {v:,}' for k, v in z['shifted'].items())}"]
            if z.get("shifted")
            else []
        ),
        "",
        f"{'stage':<20} {'runs':>5} {'steps each':>11} {'s/step':>9} {'estimated':>10}",
    ]
    for s in p["stages"]:
        lines.append(
            f"{s['stage']:<20} {s['runs']:>5} {s['steps']:>11,} {s['seconds_per_step']:>9.4f} "
            f"{duration(s['seconds']):>10}"
        )
    lines.append(f"{'total':<20} {'':>5} {'':>11} {'':>9} {duration(p['total_seconds']):>10}")
    lines += [f"note: {n}" for n in p["notes"]]
    return "\n".join(lines)
