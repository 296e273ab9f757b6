"""BackgroundResampler: Algorithm 1 driven from a plain loop, its refresh cadence, its state,
its files and its errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from bgresample import BackgroundResampler, UniformityLoss
from bgresample.resampling import BackgroundWeights, WeightedSampler


def _losses(idx: torch.Tensor) -> torch.Tensor:
    """A fixed per-item loss: item i is 'hard' in proportion to i."""
    return (idx.double() / 100.0 + 0.1).float()


def _run(resampler: BackgroundResampler, steps: range, batch: int = 16) -> list[torch.Tensor]:
    drawn = []
    for t in steps:
        idx = resampler.draw(batch, torch.Generator().manual_seed(t))
        resampler.step(idx, _losses(idx))
        drawn.append(idx)
    return drawn


def test_step_equals_the_weight_gradient_ascended_by_sgd():
    torch.manual_seed(0)
    resampler = BackgroundResampler(50, eps=0.5, lr=10.0, momentum=0.9)
    ref = BackgroundWeights(50, eps=0.5)
    opt = torch.optim.SGD(ref.parameters(), lr=10.0, momentum=0.9, maximize=True)
    for _ in range(4):
        idx = torch.randint(0, 50, (12,))
        losses = torch.rand(12)
        grad = ref.grad_omega(idx, losses)
        opt.zero_grad()
        ref.omega.grad = grad
        opt.step()
        resampler.step(idx, losses)
        torch.testing.assert_close(resampler.omega, ref.omega.detach(), rtol=1e-6, atol=1e-6)
    assert resampler.steps == 4


def test_weighted_loss_is_the_mean_of_ratio_times_loss():
    resampler = BackgroundResampler(20, eps=0.25)
    _run(resampler, range(3))
    idx = torch.tensor([0, 5, 5, 19])
    per = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    loss = resampler.weighted_loss(idx, per)
    expected = (resampler.ratios(idx) * per).mean()
    assert torch.equal(loss, expected)
    loss.backward()  # the gradient reaches the per-example losses, not the weights
    torch.testing.assert_close(per.grad, resampler.ratios(idx) / 4)


def test_hard_items_gain_weight_and_the_sampler_follows():
    resampler = BackgroundResampler(100, eps=0.5, refresh_every=5)
    _run(resampler, range(60))
    w = resampler.weights()
    assert w[90:].mean() > w[:10].mean()  # larger loss, larger weight
    counts = torch.bincount(resampler.draw(20000, torch.Generator().manual_seed(1)), minlength=100)
    assert counts[90:].sum() > counts[:10].sum()  # p_i grows with w_i (eq. 11)


def test_refresh_cadence(monkeypatch):
    refreshed: list[int] = []
    resampler = BackgroundResampler(40, refresh_every=3)
    original = resampler.refresh

    def spy() -> None:
        refreshed.append(resampler.steps)
        original()

    monkeypatch.setattr(resampler, "refresh", spy)
    _run(resampler, range(10), batch=8)
    assert refreshed == [0, 3, 6, 9]
    default = BackgroundResampler(40)  # once per pool epoch: 40 // 8 = 5 steps
    assert default.period(8) == 5 and default.next_refresh(8) == 5


def test_draw_stays_fixed_between_refreshes():
    resampler = BackgroundResampler(30, refresh_every=4)
    resampler.draw(8)
    masses = resampler._sampler.masses().clone()
    _run(resampler, range(3), batch=8)
    assert torch.equal(resampler._sampler.masses(), masses)  # not yet rebuilt
    _run(resampler, range(1), batch=8)
    resampler.draw(8)
    assert not torch.equal(resampler._sampler.masses(), masses)


@pytest.mark.parametrize("cut", [4, 5, 7])  # at a refresh and between refreshes
def test_state_dict_resumes_exactly(cut):
    straight = BackgroundResampler(60, eps=0.5, refresh_every=5)
    drawn = _run(straight, range(12))
    first = BackgroundResampler(60, eps=0.5, refresh_every=5)
    _run(first, range(cut))
    state = first.state_dict()
    resumed = BackgroundResampler(60, eps=0.5, refresh_every=5)
    resumed.load_state_dict(state)
    again = _run(resumed, range(cut, 12))
    assert all(torch.equal(a, b) for a, b in zip(drawn[cut:], again, strict=True))
    assert torch.equal(straight.omega, resumed.omega)


def test_save_and_load_round_trip(tmp_path):
    resampler = BackgroundResampler(25, eps=0.25, lr=50.0, momentum=0.5, refresh_every=3)
    _run(resampler, range(4))
    path = tmp_path / "weights.safetensors"
    resampler.save(path)
    loaded = BackgroundResampler.load(path)
    assert loaded.eps == 0.25 and loaded.steps == 4 and loaded.refresh_every == 3
    assert torch.equal(loaded.omega, resampler.omega)
    assert loaded.optimizer.param_groups[0]["lr"] == 50.0
    a, b = _run(resampler, range(4, 8)), _run(loaded, range(4, 8))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert torch.equal(loaded.omega, resampler.omega)
    assert not list(tmp_path.glob(".*.tmp"))


def test_info_of_your_own_is_kept_beside_the_weights(tmp_path):
    path = tmp_path / "w.safetensors"
    BackgroundResampler(4).save(path, {"pool": "mine.npy", "rows": 4})
    assert BackgroundResampler.read_info(path) == {"pool": "mine.npy", "rows": "4"}
    assert BackgroundResampler.load(path).omega.shape == (4,)
    BackgroundResampler(4).save(path)
    assert BackgroundResampler.read_info(path) == {}
    (tmp_path / "bad.safetensors").write_text("not safetensors")
    assert BackgroundResampler.read_info(tmp_path / "bad.safetensors") == {}


def test_reads_the_omega_only_files_of_version_0_1(tmp_path):
    path = tmp_path / "old.safetensors"
    omega = torch.randn(9)
    save_file(
        {"omega": omega}, path, metadata={"format": "bgresample.BackgroundWeights", "eps": "0.5"}
    )
    loaded = BackgroundResampler.load(path)
    assert torch.equal(loaded.omega, omega) and loaded.eps == 0.5 and loaded.steps == 0


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        BackgroundResampler.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        BackgroundResampler.load(junk)
    other = tmp_path / "model.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ValueError, match=r"holds tensors \['fc.weight'\]"):
        BackgroundResampler.load(other)
    nan = tmp_path / "nan.safetensors"
    meta = {"format": "bgresample.BackgroundWeights", "eps": "0.5"}
    save_file({"omega": torch.tensor([0.0, float("nan")])}, nan, metadata=meta)
    with pytest.raises(ValueError, match="NaN"):
        BackgroundResampler.load(nan)
    with pytest.raises(ValueError, match=r"omega of shape \(3,\), expected \(5,\)"):
        BackgroundResampler(5).load_state_dict(BackgroundResampler(3).state_dict())


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"num_items": 0}, "num_items must be a positive integer"),
        ({"num_items": 10, "eps": 1.5}, "eps must be in [0, 1]"),
        ({"num_items": 10, "lr": 0}, "lr must be a number > 0"),
        ({"num_items": 10, "momentum": -1}, "momentum must be a number in [0, 1)"),
        ({"num_items": 10, "momentum": 1.5}, "momentum must be a number in [0, 1)"),
        ({"num_items": 10, "momentum": 1.0}, "momentum must be a number in [0, 1)"),
        ({"num_items": 10, "step_scale": "batch"}, "step_scale must be one of ('none', 'mean')"),
        ({"num_items": 10, "refresh_every": 0}, "refresh_every must be a positive integer"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError) as err:
        BackgroundResampler(**kwargs)
    assert fragment in str(err.value)


def test_bad_batches():
    resampler = BackgroundResampler(10)
    with pytest.raises(ValueError, match="one value per index"):
        resampler.step(torch.tensor([1, 2]), torch.ones(3))
    with pytest.raises(ValueError, match="reduction='none'"):
        resampler.weighted_loss(torch.tensor([1, 2]), torch.tensor(1.0))
    with pytest.raises(TypeError, match="integer tensor"):
        resampler.ratios(torch.tensor([1.0, 2.0]))


def test_select_methods():
    resampler = BackgroundResampler(200)
    _run(resampler, range(30))
    top = resampler.select(0.1, "topk")
    assert len(top) == 20 and torch.equal(top, top.sort().values)
    assert resampler.weights()[top].min() >= resampler.weights().sort().values[-20]
    assert len(resampler.select(0.1, "weighted", torch.Generator().manual_seed(0))) == 20
    authors = resampler.select(0.1, "authors", torch.Generator().manual_seed(0))
    assert 5 < len(authors) < 40
    with pytest.raises(ValueError, match="gamma"):
        resampler.select(0.0)


def test_pools_beyond_torch_multinomial_limit():
    n = (1 << 24) + 3  # torch.multinomial refuses more than 2^24 categories
    resampler = BackgroundResampler(n, refresh_every=1)
    idx = resampler.draw(64, torch.Generator().manual_seed(0))
    assert idx.dtype == torch.int64 and int(idx.max()) < n
    resampler.step(idx, torch.rand(64))
    assert isinstance(resampler._sampler, WeightedSampler) and len(resampler._sampler) == n


def test_with_a_loss_module_and_autograd():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    pool = torch.randn(30, 4)
    resampler = BackgroundResampler(30)
    uniformity = UniformityLoss(reduction="none")
    idx = resampler.draw(8)
    per = uniformity(model(pool[idx]))
    resampler.weighted_loss(idx, per).backward()
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0
    resampler.step(idx, per)  # detaches: no graph kept, no second backward
    assert resampler.omega.requires_grad is False
