"""BackgroundWeights.ascent_step: the fused weight step equals the naive one (autograd through
softplus and the sums, then torch's SGD with momentum), and resumes through the SGD state."""

import copy
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from bgresample.resampling import BackgroundWeights
from bgresample.resampling import weights as weights_module

N, BATCH, LR, MOMENTUM = 3000, 64, 100.0, 0.9


def _module(eps: float, seed: int = 0) -> BackgroundWeights:
    module = BackgroundWeights(N, eps=eps)
    with torch.no_grad():
        module.omega.copy_(2.0 * torch.randn(N, generator=torch.Generator().manual_seed(seed)))
    return module


def _sgd(module: BackgroundWeights, **kw) -> torch.optim.SGD:
    kw = {"lr": LR, "momentum": MOMENTUM, "maximize": True, **kw}
    return torch.optim.SGD(module.parameters(), **kw)


def _batches(steps: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(N, (BATCH,), generator=gen)
        idx[:4] = idx[4]  # repeats
        idx[5:9] = torch.tensor([0, 499, 500, N - 1])  # chunk edges (chunk=500 below)
        yield idx, 3.0 * torch.rand(BATCH, generator=gen)


def _naive_step(module: BackgroundWeights, opt: torch.optim.Optimizer, idx, losses) -> None:
    """l_out = mean_b r_b L_b with r from eq. 12, differentiated by autograd in float64."""
    eps = module.eps
    omega = module.omega.detach().double().requires_grad_()
    w = F.softplus(omega)
    r = (w**eps).sum() / w.sum() * w[idx] ** (1 - eps)
    (r * losses.double()).mean().backward()
    opt.zero_grad()
    module.omega.grad = omega.grad.float()
    opt.step()


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    scale = b.abs().max().item()
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("eps", [0.0, 0.25, 0.5, 1.0])
def test_fused_step_equals_naive_with_momentum(eps):
    fast, slow = _module(eps), _module(eps)
    opt_fast, opt_slow = _sgd(fast), _sgd(slow)
    start = slow.omega.detach().clone()
    for idx, losses in _batches(6):
        fast.ascent_step(idx, losses, opt_fast, chunk=500)
        _naive_step(slow, opt_slow, idx, losses)
        _close(fast.omega.detach(), slow.omega.detach())
        buf_fast = opt_fast.state[fast.omega]["momentum_buffer"]
        buf_slow = opt_slow.state[slow.omega]["momentum_buffer"]
        if eps < 1:
            _close(buf_fast, buf_slow)
        else:  # autograd leaves rounding noise where the gradient is exactly zero
            assert torch.all(buf_fast == 0) and buf_slow.abs().max() < 1e-15
    moved = (slow.omega.detach() - start).abs()
    if eps < 1:
        assert moved.min() > 0 and moved.max() > 1  # every item moves, drawn ones a lot
    else:
        assert moved.max() == 0  # r_i = 1: no weight gradient
    assert fast.omega.grad is None


@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_sums_cached_by_the_step_match_a_fresh_computation(eps):
    module = _module(eps)
    opt = _sgd(module)
    for idx, losses in _batches(3):
        module.ascent_step(idx, losses, opt, chunk=700)
    cached = module.sums()
    assert module._sums_cache is not None
    ratios = module.ratios(torch.arange(10), dtype=torch.float64)
    module.invalidate()
    fresh = module.sums()
    for a, b in zip(cached, fresh, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=0)
    torch.testing.assert_close(
        module.ratios(torch.arange(10), dtype=torch.float64), ratios, rtol=1e-7, atol=0
    )


def test_cache_follows_in_place_changes_of_omega():
    module = _module(0.5)
    before = module.sums()
    with torch.no_grad():
        module.omega.add_(1.0)
    after = module.sums()
    w = F.softplus(module.omega.detach().double())
    torch.testing.assert_close(after[1], w.sum(), rtol=1e-12, atol=0)
    assert after[1] > before[1]
    other = _module(0.5, seed=3)
    module.load_state_dict(other.state_dict())
    torch.testing.assert_close(module.sums()[1], other.sums()[1], rtol=0, atol=0)
    module.eps = 1.0
    assert module.sums()[0] == module.sums()[1]


def test_resume_through_state_dicts_and_mixing_with_torch_sgd():
    eps = 0.5
    batches = list(_batches(6, seed=5))
    ref, ref_opt = _module(eps), None
    ref_opt = _sgd(ref)
    for idx, losses in batches:
        _naive_step(ref, ref_opt, idx, losses)

    # Three fused steps, save, restore into fresh objects, two fused steps and one torch step.
    run = _module(eps)
    opt = _sgd(run)
    for idx, losses in batches[:3]:
        run.ascent_step(idx, losses, opt)
    saved = copy.deepcopy((run.state_dict(), opt.state_dict()))
    resumed = BackgroundWeights(N, eps=0.1)
    resumed_opt = _sgd(resumed)
    resumed.load_state_dict(saved[0])
    resumed_opt.load_state_dict(saved[1])
    for idx, losses in batches[3:5]:
        resumed.ascent_step(idx, losses, resumed_opt)
    _naive_step(resumed, resumed_opt, *batches[5])
    _close(resumed.omega.detach(), ref.omega.detach())
    _close(
        resumed_opt.state[resumed.omega]["momentum_buffer"],
        ref_opt.state[ref.omega]["momentum_buffer"],
    )


@pytest.mark.parametrize(
    "kw", [{"momentum": 0.0}, {"weight_decay": 1e-3}, {"nesterov": True, "maximize": True}]
)
def test_other_optimiser_settings_give_the_naive_update(kw):
    fast, slow = _module(0.5), _module(0.5)
    opt_fast, opt_slow = _sgd(fast, **kw), _sgd(slow, **kw)
    for idx, losses in _batches(3):
        fast.ascent_step(idx, losses, opt_fast, chunk=500)
        _naive_step(slow, opt_slow, idx, losses)
    _close(fast.omega.detach(), slow.omega.detach())
    adam_fast, adam_slow = _module(0.5), _module(0.5)
    opt_a = torch.optim.Adam(adam_fast.parameters(), lr=0.1, maximize=True)
    opt_b = torch.optim.Adam(adam_slow.parameters(), lr=0.1, maximize=True)
    for idx, losses in _batches(2):
        adam_fast.ascent_step(idx, losses, opt_a)
        _naive_step(adam_slow, opt_b, idx, losses)
    _close(adam_fast.omega.detach(), adam_slow.omega.detach())


def test_chunked_grad_omega_equals_autograd(monkeypatch):
    monkeypatch.setitem(weights_module.CHUNK, "cpu", 7)
    module = BackgroundWeights(40, eps=0.5)
    with torch.no_grad():
        module.omega.copy_(torch.randn(40, generator=torch.Generator().manual_seed(2)))
    idx = torch.tensor([0, 6, 7, 7, 39, 13, 13, 13])
    losses = torch.rand(8, generator=torch.Generator().manual_seed(3))
    omega = module.omega.detach().double().requires_grad_()
    w = F.softplus(omega)
    ((w**0.5).sum() / w.sum() * w[idx] ** 0.5 * losses.double()).mean().backward()
    _close(module.grad_omega(idx, losses).double(), omega.grad)
    module.invalidate()
    assert module.stats()["w_median"] == pytest.approx(
        F.softplus(module.omega.detach().double()).median().item(), rel=1e-12
    )


def test_softplus_without_log1p_is_accurate():
    x = torch.cat([torch.linspace(-40, 40, 400_001), torch.linspace(-18, -14, 100_001)])
    ref = F.softplus(x.double()).clamp_min(weights_module.W_FLOOR)
    got = weights_module._softplus32(x).double()
    assert ((got - ref) / ref).abs().max() < 4e-7


@pytest.mark.slow
def test_compiled_step_equals_eager():
    fast, eager = _module(0.5), _module(0.5)
    opt_fast, opt_eager = _sgd(fast), _sgd(eager)
    for idx, losses in _batches(3):
        fast.ascent_step(idx, losses, opt_fast, compile=True)
        eager.ascent_step(idx, losses, opt_eager)
    _close(fast.omega.detach(), eager.omega.detach())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("compile", [False, True])
def test_gpu_step_equals_cpu(compile):
    cpu = _module(0.5)
    gpu = _module(0.5).to("cuda")
    opt_cpu, opt_gpu = _sgd(cpu), _sgd(gpu)
    for idx, losses in _batches(4):
        cpu.ascent_step(idx, losses, opt_cpu)
        gpu.ascent_step(idx.cuda(), losses.cuda(), opt_gpu, compile=compile)
    _close(gpu.omega.detach().cpu(), cpu.omega.detach())
    for a, b in zip(gpu.sums(), cpu.sums(), strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-6, atol=0)


def test_compile_failure_falls_back_to_the_eager_step(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C compiler found")

    monkeypatch.setattr(weights_module, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: broken)
    fast, eager = _module(0.5), _module(0.5)
    opt_fast, opt_eager = _sgd(fast), _sgd(eager)
    with pytest.warns(RuntimeWarning, match="no C compiler found"):
        for idx, losses in _batches(3):
            fast.ascent_step(idx, losses, opt_fast, compile=True)
            eager.ascent_step(idx, losses, opt_eager)
    assert torch.equal(fast.omega.detach(), eager.omega.detach())


_TRITON_CHECK = """
import torch
from bgresample.resampling import kernels, weights as W

def run(eps, use_kernel):
    kernels.available = lambda omega: use_kernel  # the interpreter runs on CPU tensors
    module = W.BackgroundWeights(3001, eps=eps)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        module.omega.copy_(torch.cat([3 * torch.randn(3000, generator=gen), torch.tensor([-30.0])]))
    opt = torch.optim.SGD(module.parameters(), lr=50.0, momentum=0.9, maximize=True)
    for step in range(3):
        idx = torch.randint(3001, (64,), generator=gen)
        idx[:3] = idx[3]
        module.ascent_step(idx, 3 * torch.rand(64, generator=gen), opt)
    return module.omega.detach(), opt.state[module.omega]["momentum_buffer"], module.sums()

for eps in (0.0, 0.25, 0.5, 1.0):
    got, want = run(eps, True), run(eps, False)
    for a, b in zip(got[:2], want[:2]):
        torch.testing.assert_close(a, b, rtol=2e-6, atol=2e-6 * b.abs().max().item())
    for a, b in zip(got[2], want[2]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
    assert got[0].ne(want[0]).sum() < got[0].numel()  # the kernel really ran (rounding differs)

import torch.nn.functional as F
import triton
import triton.language as tl

@triton.jit
def softplus_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, kernels._softplus(tl.load(x_ptr + offs, mask=mask), 1e-12), mask=mask)

x = torch.cat([torch.linspace(-40, 40, 40_001), torch.linspace(-1, 1, 20_001)])
y = torch.empty_like(x)
softplus_kernel[(triton.cdiv(x.numel(), 1024),)](x, y, x.numel(), 1024)
ref = F.softplus(x.double()).clamp_min(1e-12)
assert ((y.double() - ref) / ref).abs().max() < 3e-7
print("ok")
"""


@pytest.mark.skipif(weights_module.kernels.triton is None, reason="needs Triton")
def test_triton_dense_pass_equals_torch_pass_in_the_interpreter():
    """The CUDA kernel of the dense pass, run by Triton's interpreter on the CPU, equals the
    chunked torch pass over 3 momentum steps for every eps kind (sqrt, general, 0, 1)."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _TRITON_CHECK], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]
