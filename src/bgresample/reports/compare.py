"""Several runs side by side (``bgresample compare``): run x variant -> average FPR95 / AUROC /
AUPR and ID accuracy, from each folder's ``results.json`` (``run`` or ``evaluate`` folders);
and, for runs with seeds in common, each later run's variants minus the first run's, paired by
seed (from the ``seed_*/results.json`` files)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bgresample.config import default_config, flat_config, flatten, read_yaml_file
from bgresample.errors import UserError
from bgresample.files import atomic_write_text
from bgresample.metrics import paired_difference
from bgresample.provenance import entries
from bgresample.reports.build import read_results
from bgresample.reports.tables import METRIC_LABELS, METRICS, Table, ci_text, csv_text
from bgresample.results import PairedDifference, SeedResults, SeedVariant
from bgresample.runfolder import read_run_meta

CSV_HEADER = [
    "run",
    "path",
    "variant",
    "seeds",
    "ood_sets",
    *(f"{m}_{s}" for m in METRICS for s in ("mean", "std")),
    "accuracy_mean",
    "accuracy_std",
]


def _labels(dirs: list[Path]) -> list[str]:
    """Folder names, or the paths as given where two runs share a name."""
    names = [d.name or str(d) for d in dirs]
    return [n if names.count(n) == 1 else str(d) for n, d in zip(names, dirs, strict=True)]


def compare_records(run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One record per (run, variant): the average over OOD sets of each metric (mean, and std
    over seeds for a run of several seeds) and the ID accuracy. A single-model ``evaluate``
    folder shows means alone: the ± of its report's Average rows is over every subsample of
    every set, mostly the spread between OOD sets, not comparable with a spread over seeds."""
    dirs = [Path(d) for d in run_dirs]
    records = []
    for label, d in zip(_labels(dirs), dirs, strict=True):
        results = read_results(d)
        n_seeds = len(results.seeds or []) or 1
        evaluated = results.checkpoint is not None  # an evaluate folder: one model
        no_spread = evaluated or (results.seeds is not None and len(results.seeds) == 1)
        for v, r in results.variants.items():
            rec: dict[str, Any] = {
                "run": label,
                "path": str(d),
                "variant": v,
                "seeds": n_seeds,
                "ood_sets": len(r.ood),
            }
            for m in METRICS:
                avg = r.average.get(m)
                rec[f"{m}_mean"] = "" if avg is None else avg.mean
                rec[f"{m}_std"] = "" if avg is None or no_spread else avg.std
            rec["accuracy_mean"] = r.accuracy
            rec["accuracy_std"] = "" if r.accuracy_std is None else r.accuracy_std
            records.append(rec)
    return records


def _pm(mean: Any, std: Any) -> str:
    if mean == "":
        return "n/a"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std != "" else "")


def compare_table(records: list[dict[str, Any]]) -> Table:
    """The display table of :func:`compare_records`."""
    header = ["run", "variant", "seeds", "OOD sets"]
    header += [f"avg {METRIC_LABELS[m]}" for m in METRICS] + ["ID accuracy"]
    rows = [
        [r["run"], r["variant"], str(r["seeds"]), str(r["ood_sets"])]
        + [_pm(r[f"{m}_mean"], r[f"{m}_std"]) for m in METRICS]
        + [_pm(r["accuracy_mean"], r["accuracy_std"])]
        for r in records
    ]
    return Table(header, rows)


#: Paired columns: (label, results key, metric); "validation" is the average over the
#: validation OOD sets (the pool hold-out; on the embedded benchmark also ``val-glyphs``).
PAIRED_COLUMNS = (
    ("avg FPR95", "average", "fpr95"),
    ("avg AUROC", "average", "auroc"),
    ("val FPR95", "validation", "fpr95"),
    ("val AUROC", "validation", "auroc"),
)
PAIRED_NOTE = (
    "Paired by seed: each run's variant minus the same variant of the first run, mean of the "
    "per-seed differences with a 95% t interval over the seeds both ran. Pairing removes the "
    "seed-to-seed spread only where the runs share each seed's pre-trained model and ID "
    "batches (same seeds, data and pre-training config; see the config keys that differ). "
    "The test columns are n/a where the runs were tested on different OOD sets, the "
    "validation columns where they were validated on different sets (other validation sets, "
    "or another ID dataset, pool or validation split)."
)

#: Config keys that decide which images a run's validation sets hold (the pool hold-out is a
#: share of the pool): these keys, and every key under the sections ending in ".".
VALIDATION_DATA_KEYS = (
    "data.id",
    "data.background",
    "data.benchmark",
    "data.embedded.",
    "data.mnist.",
    "data.validation.",
)


def _per_seed(run_dir: Path) -> dict[int, dict[str, SeedVariant]]:
    """seed -> {variant: its results} from a run folder's ``seed_*/results.json`` (empty for an
    ``evaluate`` folder)."""
    out: dict[int, dict[str, SeedVariant]] = {}
    for path in sorted(run_dir.glob("seed_*/results.json")):
        try:
            res = SeedResults.from_json(json.loads(path.read_text()))
            out[int(res.seed)] = res.variants
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserError(
                f"{path} is not a per-seed results file of bgresample run ({type(e).__name__}: "
                f"{e}); re-run the command that wrote {run_dir}, or leave it out of the comparison"
            ) from None
    return out


def _paired_value(r: SeedVariant, key: str, metric: str) -> float | None:
    """One seed's ``average`` or ``validation`` (validation OOD sets) average of ``metric``; None
    where the seed has none."""
    if key == "validation":
        metrics = r.validation.average if r.validation is not None else {}
    else:
        metrics = r.evaluation.average
    value = metrics.get(metric)
    return None if value is None else value.mean


def _run_config(run_dir: Path) -> dict[str, Any]:
    """A run folder's flattened ``config.yaml``, a key it lacks at its default value; {} for a
    folder without one."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    return {**flat_config(default_config()), **flatten(read_yaml_file(path, "run config"))}


def _inputs(run_dir: Path) -> dict[str, Any]:
    """The fingerprints of a run's input files (``meta.json``'s ``inputs``); {} without."""
    inputs = (read_run_meta(run_dir) or {}).get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def _identities(inputs: dict[str, Any]) -> list[str]:
    """The fingerprints of ``inputs`` (entries of ``meta.json``'s), sorted, without their
    paths: the same data at another path or data root counts as the same."""
    return sorted(
        json.dumps(v.get("identity"), sort_keys=True)
        for v in inputs.values()
        if isinstance(v, dict)
    )


def _validation_data(run_dir: Path) -> dict[str, Any]:
    """What decides the images of a run's validation sets: its config's
    :data:`VALIDATION_DATA_KEYS`, with a ``data.id`` / ``data.background`` read from files as
    its kind and the files' fingerprints (not their paths)."""
    cfg, inputs = _run_config(run_dir), _inputs(run_dir)
    out = {}
    for k in cfg:
        if k in VALIDATION_DATA_KEYS or k.startswith(VALIDATION_DATA_KEYS):
            files = _identities(entries(inputs, k)) if k in ("data.id", "data.background") else []
            spec = cfg[k]
            out[k] = [str(spec).partition(":")[0].lower(), files] if files else spec
    return out


#: Config keys that generate the built-in benchmarks' OOD test sets (their files: none).
GENERATED_OOD_KEYS = (
    "data.benchmark",
    "data.embedded.seed",
    "data.embedded.ood_size",
    "data.embedded.noise_ood_size",
    "data.mnist.seed",
    "data.mnist.ood_size",
    "data.mnist.noise_ood_size",
)


def _ood_images(run_dir: Path) -> list[Any]:
    """What decides the images of a run's OOD sets: the files' fingerprints (``meta.json``) and
    the config keys that generate the built-in sets."""
    cfg = _run_config(run_dir)
    files = {k: v for k, v in _inputs(run_dir).items() if k.startswith("evaluate.ood[")}
    return [_identities(files), [cfg.get(k) for k in GENERATED_OOD_KEYS]]


def ood_sets(run_dir: Path) -> tuple[list[str], list[Any]]:
    """The OOD sets a run or ``evaluate`` folder was tested on (every variant's, in order) and
    what decides their images (:func:`_ood_images`)."""
    names = list(dict.fromkeys(n for r in read_results(run_dir).variants.values() for n in r.ood))
    return names, _ood_images(run_dir)


def _validation_sets(r: SeedVariant) -> tuple[str, ...] | None:
    """The validation OOD sets a seed's variant was validated on (empty for files written
    before they were recorded); None without validation."""
    return None if r.validation is None else tuple(r.validation.ood or ())


def paired_records(run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One record per (later run, variant it shares with the first run) with seeds in common:
    ``{run, variant, seeds, <key>.<metric>: PairedDifference}``, later minus first."""
    dirs = [Path(d) for d in run_dirs]
    if len(dirs) < 2:
        return []
    labels = _labels(dirs)
    base = _per_seed(dirs[0])
    base_data, base_images = _validation_data(dirs[0]), _ood_images(dirs[0])
    records = []
    for label, d in zip(labels[1:], dirs[1:], strict=True):
        other = _per_seed(d)
        seeds = sorted(set(base) & set(other))
        variants = [v for v in (other[seeds[0]] if seeds else {}) if v in base[seeds[0]]]
        same_data = _validation_data(d) == base_data
        same_images = _ood_images(d) == base_images
        for v in variants:
            rec: dict[str, Any] = {"run": label, "variant": v, "seeds": seeds}
            same_test = same_images and all(
                sorted(other[s][v].evaluation.ood) == sorted(base[s][v].evaluation.ood)
                for s in seeds
            )
            same_validation = same_data and all(
                _validation_sets(other[s][v]) == _validation_sets(base[s][v]) for s in seeds
            )  # not: a run from before val-glyphs, or on another pool (another hold-out)
            for _, key, m in PAIRED_COLUMNS:
                if not (same_validation if key == "validation" else same_test):
                    continue
                a = [_paired_value(other[s][v], key, m) for s in seeds]
                b = [_paired_value(base[s][v], key, m) for s in seeds]
                if None not in a and None not in b:
                    rec[f"{key}.{m}"] = PairedDifference.from_json(paired_difference(a, b))
            records.append(rec)
    return records


def _ci(d: PairedDifference | None) -> str:
    return "n/a" if d is None else ci_text(d)


def paired_table(records: list[dict[str, Any]], first: str) -> Table:
    """The display table of :func:`paired_records`."""
    header = ["run", "variant", "seeds"] + [f"Δ {lbl} vs {first}" for lbl, _, _ in PAIRED_COLUMNS]
    rows = [
        [r["run"], r["variant"], str(len(r["seeds"]))]
        + [_ci(r.get(f"{key}.{m}")) for _, key, m in PAIRED_COLUMNS]
        for r in records
    ]
    return Table(header, rows)


def _paired_csv(records: list[dict[str, Any]]) -> str:
    """``compare_paired.csv``: per record and paired column, the mean difference and its CI."""
    keys = [f"{key}.{m}" for _, key, m in PAIRED_COLUMNS]
    header = ["run", "variant", "seeds"]
    header += [f"{k}_{s}" for k in keys for s in ("mean", "ci95_low", "ci95_high")]
    rows = []
    for r in records:
        row = [r["run"], r["variant"], " ".join(map(str, r["seeds"]))]
        for k in keys:
            d = r.get(k)
            ci = d.ci95 if d is not None and d.ci95 is not None else ["", ""]
            row += [d.mean if d is not None else "", *ci]
        rows.append(row)
    return csv_text(header, rows)


def _paired_text(records: list[dict[str, Any]], first: str, markdown: bool) -> str:
    """The paired table with its note, or "" when no later run shares seeds and variants."""
    if not records:
        return ""
    table = paired_table(records, first)
    return (table.markdown() if markdown else table.text()) + "\n\n" + PAIRED_NOTE


def config_differences(run_dirs: Sequence[str | Path]) -> list[tuple[str, list[Any]]]:
    """(dotted key, one value per run) for every config key whose value differs between the
    runs' ``config.yaml`` files. A key a run's file lacks (added to bgresample since that run)
    counts as its default value; "?" for a run without a config file."""
    default = flat_config(default_config())
    configs: list[dict[str, Any] | None] = []
    for d in run_dirs:
        path = Path(d) / "config.yaml"
        configs.append(flatten(read_yaml_file(path, "run config")) if path.is_file() else None)
    keys = list(dict.fromkeys(k for c in configs if c is not None for k in c))
    rows = [
        (k, ["?" if c is None else c.get(k, default.get(k, "?")) for c in configs]) for k in keys
    ]
    return [(k, vals) for k, vals in rows if any(v != vals[0] for v in vals)]


def differences_text(run_dirs: Sequence[str | Path]) -> str:
    """The differing config keys, one line each (``key: a | b | ...``), or a line saying none."""
    diffs = config_differences(run_dirs)
    if not diffs:
        return "The runs' configs are identical."
    lines = [f"{len(diffs)} config key(s) differ between the runs (in the order given):"]
    lines += [f"  {k}: {' | '.join(json.dumps(v) for v in vals)}" for k, vals in diffs]
    return "\n".join(lines)


def ood_sets_note(run_dirs: Sequence[str | Path]) -> str:
    """A warning naming each run's OOD sets where the runs were tested on different ones (other
    names, or other images behind a name), else ""."""
    dirs = [Path(d) for d in run_dirs]
    sets = [(sorted(names), images) for names, images in map(ood_sets, dirs)]
    if all(s == sets[0] for s in sets):
        return ""
    each = "; ".join(
        f"{label}: {', '.join(names)}" + (" (other images)" if images != sets[0][1] else "")
        for label, (names, images) in zip(_labels(dirs), sets, strict=True)
    )
    return (
        f"Warning: the runs were tested on different OOD sets ({each}); their averages are "
        "not comparable."
    )


def compare_text(run_dirs: Sequence[str | Path]) -> str:
    """The comparison as aligned console text, a warning where the runs were tested on
    different OOD sets, the paired differences where the runs share seeds, and the config keys
    that differ."""
    first = _labels([Path(d) for d in run_dirs])[0]
    parts = [
        compare_table(compare_records(run_dirs)).text(),
        ood_sets_note(run_dirs),
        _paired_text(paired_records(run_dirs), first, False),
    ]
    return "\n\n".join([p for p in parts if p] + [differences_text(run_dirs)])


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write ``compare.md``, ``compare.csv`` and (for runs sharing seeds) ``compare_paired.csv``
    into ``out``; returns the Markdown's path."""
    if not run_dirs:
        raise UserError("compare needs at least one run folder")
    records = compare_records(run_dirs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [[r[k] for k in CSV_HEADER] for r in records]
    atomic_write_text(out / "compare.csv", csv_text(CSV_HEADER, rows))
    runs = _runs(records)
    paired = paired_records([p for _, p in runs])
    if paired:
        atomic_write_text(out / "compare_paired.csv", _paired_csv(paired))
    parts = [
        "# bgresample: runs compared",
        "Averages over each run's OOD sets (FPR95 ↓ / AUROC ↑ / AUPR ↑, %) and ID accuracy "
        "(%), mean ± std over seeds (means alone for one seed and for a single-model "
        "`evaluate` folder). Runs with different OOD sets are not directly comparable.",
        compare_table(records).markdown(),
        ood_sets_note([p for _, p in runs]),
        _paired_text(paired, runs[0][0], True),
        "Runs:\n\n" + "\n".join(f"- {lbl}: `{p}`" for lbl, p in runs),
        "```\n" + differences_text([p for _, p in runs]) + "\n```",
    ]
    md = "\n\n".join(p for p in parts if p)
    path = out / "compare.md"
    atomic_write_text(path, md + "\n")
    return path


def _runs(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r["run"], r["path"]) for r in records))
