"""``bgresample compare-selectors --quick`` end to end on a tiny configuration."""

import json

import pytest
import torch
from safetensors.torch import load_file

from bgresample.cli import main
from bgresample.errors import UserError


def _args(out, tiny: list[str], *extra: str) -> list[str]:
    """The shared tiny configuration with one pre-training epoch and one seed."""
    sets = ["--set", "pretrain.epochs=1", "--set", "run.seeds=1"]
    return ["compare-selectors", "--quick", "--out", str(out), *tiny, *sets, *extra]


def test_compare_selectors_quick(tmp_path, tiny, data_root, capsys):
    out = tmp_path / "sel"
    names = ["none", "resampled", "ntom", "dos"]  # no background, once, epoch, batch
    # one OOD set keeps the standard report's figures (most of the time) short
    assert main(_args(out, tiny, "--selectors", ",".join(names), "--ood", "digits89")) == 0
    printed = capsys.readouterr().out
    assert all(n in printed for n in names) and "fwd total" in printed
    res = json.loads((out / "results.json").read_text())
    assert list(res["variants"]) == names and res["seeds"] == [0]
    k = res["budget"]["k"]
    # 570 pool items (30 held out for validation), 650 ID training images (72 held out)
    assert k == 57 and res["budget"]["background_draws"] == 10 * 64
    for v in names:
        entry = res["variants"][v]
        assert set(entry["average"]) == {"fpr95", "auroc", "aupr", "aupr_in", "aupr_out"}
        assert list(entry["ood"]) == ["digits89"]
        assert (out / "seed_0" / f"{v}.safetensors").is_file()
    sel = res["selection"]
    assert sel["none"]["total"] == 0 and sel["none"]["distinct_items"] == 0
    assert sel["resampled"]["setup"] == 9 * 64 and sel["resampled"]["per_epoch"] == 0
    assert sel["ntom"]["total"] == 10 * 228  # a background epoch = 1 step; 4 k candidates
    assert sel["dos"]["total"] == 10 * 57  # candidates capped at the k eligible items
    assert 0 < sel["dos"]["distinct_items"] <= 600
    # forward-pass equivalents: Algorithm 1 passes ID and pool items forward and backward (3 each)
    assert sel["resampled"]["fwd_eq"] == 6 * sel["resampled"]["setup"]
    assert sel["ntom"]["fwd_eq"] == sel["ntom"]["total"]  # scoring passes are forward only
    assert sel["none"]["seconds"] == 0 and all(sel[v]["seconds"] > 0 for v in names[1:])
    assert "fwd-eq total" in printed and "seconds" in printed
    assert (out / "figures" / "pareto.png").is_file()
    report = (out / "report.md").read_text()
    assert "Background selectors on the same budget" in report and "figures/pareto.png" in report
    html = (out / "report.html").read_text()
    assert "Background selectors on the same budget" in html and "data:image/png" in html
    # `bgresample report` rebuilds the same report, selector section included.
    (out / "report.md").unlink()
    assert main(["report", str(out), "--data-root", str(data_root)]) == 0
    assert (out / "report.md").read_text() == report
    # Another score (energy): the whole report, its figures and galleries named after it.
    res["budget"]["score"] = "energy"
    (out / "results.json").write_text(json.dumps(res))
    assert main(["report", str(out), "--data-root", str(data_root)]) == 0
    for name in ("report.md", "report.html"):
        text = (out / name).read_text()
        assert "Background selectors on the same budget" in text
        bold = "**energy**" if name.endswith(".md") else "<strong>energy</strong>"
        assert "OOD detection (Table 2 analogue)" in text and f"{bold} score" in text
        assert "−energy histograms" in text and "MSP histograms" not in text


def test_unknown_selector_is_a_clean_error(tmp_path, tiny, capsys):
    assert main(_args(tmp_path / "x", tiny, "--selectors", "ntom,nope")) == 2
    err = capsys.readouterr().err
    assert "selectors.names=" in err and "nope" in err and "Traceback" not in err


def test_selector_names_seeds_and_out(tmp_path):
    from bgresample.cli import build_parser, resolve_config

    args = build_parser().parse_args(["compare-selectors", "--selectors", "ntom, dos"])
    cfg = resolve_config(args)
    assert cfg.selectors.names == ["ntom", "dos"]
    assert cfg.run.seeds == min(5, cfg.selectors.max_seeds)
    sets = ["--set", "selectors.names=none,full", "--set", "run.seeds=2"]
    cfg = resolve_config(build_parser().parse_args(["compare-selectors", *sets]))
    assert cfg.selectors.names == ["none", "full"] and cfg.run.seeds == 2
    cfg = resolve_config(build_parser().parse_args(["compare-selectors", "--seeds", "7"]))
    assert cfg.run.seeds == 7
    with pytest.raises(UserError, match="distinct"):
        resolve_config(build_parser().parse_args(["compare-selectors", "--selectors", "dos,dos"]))


def test_loss_cells_share_the_pretrained_model_and_id_batches(tmp_path, tiny, monkeypatch):
    """Cells SELECTOR+LOSS fine-tune with their own loss and score (test sets and validation
    alike); a cell with the run's own loss is the plain variant (same model, bit for bit); each
    cell is paired with its loss's random cell, and resampled+LOSS also with full+LOSS."""
    from collections import Counter

    from bgresample.engine import experiment

    used, evaluate = Counter(), experiment.evaluate

    def spy(*args, **kwargs):
        used[kwargs["scores"]] += 1
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(experiment, "evaluate", spy)
    out = tmp_path / "cells"
    names = ["random", "random+uniform", "random+energy", "resampled+energy", "full+energy"]
    names += ["hopfield-boosting+hopfield", "random+hopfield"]
    assert main(_args(out, tiny, "--selectors", ",".join(names), "--ood", "digits89")) == 0
    # each variant: the test sets and the validation split, with its loss's score
    assert used == {"msp": 2 * 2, "energy": 3 * 2, "hopfield": 2 * 2}
    res = json.loads((out / "results.json").read_text())
    assert list(res["variants"]) == names
    assert res["budget"]["loss"] == "uniform"  # the plain variants' loss
    v = res["variants"]
    assert v["random+energy"]["score"] == "energy" and v["random+hopfield"]["score"] == "hopfield"
    assert "score" not in v["random"]
    seed = out / "seed_0"
    plain = load_file(seed / "random.safetensors")
    same, energy = (
        load_file(seed / "random+uniform.safetensors"),
        load_file(seed / "random+energy.safetensors"),
    )
    assert all(torch.equal(t, same[k]) for k, t in plain.items())  # random+uniform is random
    assert not all(torch.equal(t, energy[k]) for k, t in plain.items())
    assert "hopfield.id_patterns" in load_file(seed / "random+hopfield.safetensors")
    assert set(res["paired_differences"]) == {
        "resampled+energy_minus_random+energy",
        "resampled+energy_minus_full+energy",
        "full+energy_minus_random+energy",
        "hopfield-boosting+hopfield_minus_random+hopfield",
    }
    assert (out / "figures" / "pareto.png").is_file()  # one marker per cell, shaped by loss
    report = (out / "report.md").read_text()
    assert "`random+energy` energy" in report and "same loss's `random` cell" in report


@pytest.mark.parametrize("bad", ["none+energy", "random+nope", "nope+energy"])
def test_a_bad_cell_is_a_clean_error(bad):
    from bgresample.cli import build_parser, resolve_config

    with pytest.raises(UserError, match=r"SELECTOR\+LOSS"):
        resolve_config(build_parser().parse_args(["compare-selectors", "--selectors", bad]))


def test_cell_config_takes_the_loss_and_its_learning_rate():
    from bgresample.config import load_config
    from bgresample.engine.experiment import cell_config

    cfg = load_config(None, ["selectors.cell_lr.hopfield=0.01", "selectors.cell_lr.uniform=0.001"])
    assert cell_config(cfg, "random") is cfg  # a plain variant keeps finetune.*
    energy = cell_config(cfg, "random+energy")  # the default's cell_lr, merged key by key
    assert (energy.finetune.loss, energy.finetune.lr) == ("energy", 0.001)
    extra = cell_config(cfg, "random+extra_class")  # a loss not listed: finetune.lr
    assert (extra.finetune.loss, extra.finetune.lr) == ("extra_class", cfg.finetune.lr)
    hop = cell_config(cfg, "resampled+hopfield")
    assert (hop.finetune.loss, hop.finetune.lr) == ("hopfield", 0.01)
    same_loss = cell_config(cfg, "random+uniform")  # the run's loss, another lr
    assert (same_loss.finetune.loss, same_loss.finetune.lr) == ("uniform", 0.001)
    plain = load_config(None, [])
    assert cell_config(plain, "random+uniform") is plain
    with pytest.raises(UserError, match="cell_lr"):
        load_config(None, ["selectors.cell_lr.nope=0.1"])
