"""Learned background weights of the adversarial resampling (paper Section B, eqs. 10-12).

One unconstrained parameter omega_i per background item, w_i = softplus(omega_i) (Section C),
omega initialised to 0. The training loop draws items with p_i (eq. 11), weights their detached
uniformity losses by r_i (eq. 12) and ascends ``grad_omega``. The weight gradient is analytic:
it needs only the per-example losses, never a second backward pass through the network.

Its expectation over the draws equals the gradient of sum_i w_i L_i / sum_j w_j only at eps = 0:
for eps > 0 the draw distribution p also depends on w and that (score-function) term is not in
the mini-batch gradient of Algorithm 1; at eps = 1, r_i = 1 and the gradient is exactly zero.

Numerics: ``grad_omega``, ``sums``, ``probs`` and ``ratios`` compute w in float64; the fused
``ascent_step`` and ``masses`` (the sampler's input) in float32, w to about 2e-7 relative, which
keeps the update equal to grad_omega + SGD to about 1e-7. softplus underflows for very
negative omega (to 0 below about -745 in float64), which would make w^(eps-1) infinite, so w is
clamped below at ``W_FLOOR``. The floor only guards values: the gradient keeps the softplus
derivative sigmoid(omega), so a floored item can still climb back.

Scale (80M-item pools): every O(N) computation runs over chunks of omega, so no N-sized float64
temporary is ever allocated. The sums S_eps = sum_j w_j^eps and S_1 = sum_j w_j are cached, keyed
by omega's version counter (any in-place change of the parameter, an optimiser step,
``load_state_dict`` or ``.to()`` invalidates them), which makes ``ratios`` O(batch).
``ascent_step`` fuses the weight gradient with the SGD momentum update in a single pass over
omega (float32 arithmetic, chunk-sized temporaries) and computes the next step's sums in the same
pass: the whole weight step reads and writes omega and the momentum buffer once. On a GPU the
whole step is compiled (``compile=True``, ``accel.compile_weights``).
"""

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bgresample.resampling import kernels

W_FLOOR = 1e-12
"""Smallest weight value; w = max(softplus(omega), W_FLOOR)."""

_TINY = 1e-30

CHUNK = {"cpu": 1 << 16, "cuda": 1 << 22}
"""Items per chunk of the O(N) passes, by device type (cache-sized on the CPU, few kernel
launches on a GPU)."""


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"sampler coefficient eps must be in [0, 1], got {eps}")
    return eps


def _chunk_size(device: torch.device, chunk: int | None) -> int:
    return int(chunk) if chunk else CHUNK.get(device.type, CHUNK["cuda"])


def _spans(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]


def _softplus_(x: Tensor, w: Tensor, t: Tensor, u: Tensor) -> Tensor:
    """w = max(softplus(x), W_FLOOR) = max(x, 0) + log1p(exp(-|x|)), float32, in the given
    buffers (no allocation).

    On the CPU, float32 ``log1p`` is not vectorised (about 9 ns per item), so log1p(t) is computed
    as t log(1 + t) / ((1 + t) - 1), exact to a few ulp (Goldberg, 1991); adding 1e-30 to
    numerator and denominator, far below their ulp whenever 1 + t > 1, turns the 0 / 0 where
    1 + t rounds to 1 into the right answer t without a comparison.
    """
    torch.abs(x, out=t)
    t.neg_().exp_()  # t = exp(-|x|), in (0, 1]
    if x.device.type == "cpu":
        torch.add(t, 1.0, out=u)
        torch.log(u, out=w).add_(_TINY)
        u.sub_(1.0).add_(_TINY)  # (1 + t) - 1 is exact
        w.div_(u).mul_(t)
    else:
        torch.log1p(t, out=w)
    torch.clamp_min(x, 0.0, out=t)
    return w.add_(t).clamp_min_(W_FLOOR)


def _softplus32(x: Tensor) -> Tensor:
    """``_softplus_`` with fresh buffers (for a batch of items)."""
    return _softplus_(x, torch.empty_like(x), torch.empty_like(x), torch.empty_like(x))


def _pow(w: Tensor, exponent: float) -> Tensor:
    # exponent 0 gives exact ones, exponent 1 the values themselves.
    if exponent == 0.0:
        return torch.ones_like(w)
    if exponent == 1.0:
        return w
    return w.pow(exponent)


def _fused_chunk(
    omega: Tensor,
    buf: Tensor | None,
    c0: Tensor,
    c1: Tensor,
    eps: float,
    lr: float,
    momentum: float,
    first: bool,
    scratch: tuple[Tensor, ...],
) -> tuple[Tensor, Tensor]:
    """One chunk of ``ascent_step``, in place on ``omega`` (and ``buf``), float32 arithmetic in
    the chunk-sized ``scratch`` buffers (w, sig, t, u).

    Dense gradient g = sigmoid(omega) (c1 w^(eps-1) - c0); then exactly torch's SGD with
    ``maximize=True``: buf = momentum buf + (-g) (buf = -g on the first step), omega -= lr buf
    (omega += lr g without momentum). Returns (sum w, sum w^eps) of the updated chunk, float64.
    """
    m = omega.numel()
    w, sig, t, u = (x[:m] for x in scratch)
    if eps == 1.0:  # r_i = 1: no gradient, only the momentum acts
        g = sig.zero_()
    else:
        torch.sigmoid(omega, out=sig)
        if eps == 0.0:
            g = sig.mul_(-c0)
        else:
            g = _softplus_(omega, w, t, u).pow_(eps - 1.0).mul_(c1).sub_(c0).mul_(sig)
    if buf is None:
        omega.add_(g, alpha=lr)
    else:
        if first:
            torch.neg(g, out=buf)
        else:
            buf.mul_(momentum).sub_(g)
        omega.add_(buf, alpha=-lr)
    w = _softplus_(omega, w, t, u)
    s_1 = w.sum(dtype=torch.float64)
    if eps == 1.0:
        return s_1, s_1
    if eps == 0.0:
        return s_1, torch.full_like(s_1, float(m))
    return s_1, w.pow_(eps).sum(dtype=torch.float64)


def _fused_whole(
    omega: Tensor,
    buf: Tensor,
    c0: Tensor,
    c1: Tensor,
    lr: Tensor,
    eps: float,
    momentum: float,
    first: bool,
) -> tuple[Tensor, Tensor]:
    """``_fused_chunk`` over the whole of omega, the dense pass of ``_whole_step`` (compiled:
    one pass that reads and writes omega and buf once, memory-bandwidth bound on a GPU). Momentum
    only; ``lr`` is a 0-d tensor so that a learning-rate schedule does not recompile."""
    x = omega
    sig = torch.sigmoid(x)
    if eps == 1.0:
        g = torch.zeros_like(x)
    elif eps == 0.0:
        g = sig * (-c0)
    else:
        w = F.softplus(x).clamp_min(W_FLOOR)
        g = (w.pow(eps - 1.0) * c1 - c0) * sig
    new_buf = -g if first else buf * momentum - g
    new_omega = x - lr * new_buf
    w = F.softplus(new_omega).clamp_min(W_FLOOR)
    s_1 = w.sum(dtype=torch.float64)
    if eps == 1.0:
        s_eps = s_1
    elif eps == 0.0:
        s_eps = torch.full_like(s_1, float(x.numel()))
    else:
        s_eps = w.pow(eps).sum(dtype=torch.float64)
    buf.copy_(new_buf)
    omega.copy_(new_omega)
    return s_1, s_eps


def _w64(omega: Tensor) -> Tensor:
    """w = max(softplus(omega), W_FLOOR) in float64: max(x, 0) + log1p(exp(-|x|)), about twice
    as fast as F.softplus in float64."""
    x = omega.double()
    return x.abs().neg_().exp_().log1p_().add_(x.clamp_min(0.0)).clamp_min_(W_FLOOR)


def _batch_terms(
    omega: Tensor, indices: Tensor, losses: Tensor, s_eps: Tensor, s_1: Tensor, eps: float
) -> tuple[Tensor, ...]:
    """Float64 per-draw quantities: the drawn omega, the exact gradient at each drawn item
    (dense + sparse parts, repeats summed; see ``grad_omega``) and the scalars
    c0 = A S_eps / S_1^2 and c1 = A eps / S_1 of the dense part sigmoid(omega_k)
    (c1 w_k^(eps-1) - c0); also the B x B mask of repeated draws."""
    batch = indices.numel()
    omega_i = omega[indices]
    w_i = _w64(omega_i)
    loss = losses.detach().to(device=w_i.device, dtype=torch.float64) / batch
    a = (loss * _pow(w_i, 1.0 - eps)).sum()
    c0 = a * s_eps / s_1**2
    c1 = a * eps / s_1
    # Loss summed over the repeats of each draw's item (B x B: no sync, no unique()).
    same = indices[:, None] == indices[None, :]
    loss_k = (same.double() * loss[None, :]).sum(1)
    grad = -c0 + c1 * _pow(w_i, eps - 1.0) if eps > 0.0 else -c0.expand_as(w_i)
    if eps < 1.0:
        grad = grad + (s_eps / s_1 * (1.0 - eps)) * _pow(w_i, -eps) * loss_k
    grad = grad * torch.sigmoid(omega_i.double())
    if eps == 1.0:
        grad = torch.zeros_like(grad)
    return omega_i, grad, c0, c1, same


def _patch(
    omega: Tensor,
    buf: Tensor | None,
    indices: Tensor,
    same: Tensor,
    new_i: Tensor,
    buf_i: Tensor | None,
    s_1: Tensor,
    s_eps: Tensor,
    eps: float,
    softplus: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    """After the dense pass, which gave the drawn items only the dense gradient: write their
    exact values and correct the sums (each distinct item once: the first of its repeats)."""
    once = ~torch.tril(same, diagonal=-1).any(1)
    w_dense = softplus(omega[indices])
    omega[indices] = new_i
    if buf is not None:
        buf[indices] = buf_i
    w_new = softplus(new_i)
    s_1 = s_1 + torch.where(once, w_new.double() - w_dense.double(), 0.0).sum()
    if eps == 1.0:
        s_eps = s_1.clone()
    elif eps > 0.0:
        diff = w_new.double().pow(eps) - w_dense.double().pow(eps)
        s_eps = s_eps + torch.where(once, diff, 0.0).sum()
    return s_1, s_eps


def _softplus_ref(x: Tensor) -> Tensor:
    return F.softplus(x).clamp_min(W_FLOOR)


def _whole_step(
    omega: Tensor,
    buf: Tensor,
    indices: Tensor,
    losses: Tensor,
    s_eps: Tensor,
    s_1: Tensor,
    lr: Tensor,
    eps: float,
    momentum: float,
    first: bool,
) -> tuple[Tensor, Tensor]:
    """The whole of ``ascent_step`` with momentum (batch terms, dense pass, patch, sums) as one
    function, written for ``torch.compile``: a handful of fused kernels instead of ~100 small
    ones, which on a GPU would leave the step bound by kernel launches. ``lr`` is a 0-d tensor
    so that a learning-rate schedule does not recompile. Returns the new (S_1, S_eps)."""
    omega_i, grad_i, c0, c1, same = _batch_terms(omega, indices, losses, s_eps, s_1, eps)
    g_i = grad_i.float()
    buf_i = -g_i if first else buf[indices] * momentum - g_i
    new_i = omega_i - lr * buf_i
    s_1, s_eps = _fused_whole(omega, buf, c0.float(), c1.float(), lr, eps, momentum, first)
    return _patch(omega, buf, indices, same, new_i, buf_i, s_1, s_eps, eps, _softplus_ref)


_COMPILED: dict[str, object] = {}


def _run_compiled(*args) -> tuple[Tensor, Tensor] | None:
    """``_whole_step`` compiled (once per process); None, with one warning, where compiling is
    not possible here (no Triton / C compiler): the caller then runs the eager step. A failure
    happens before the kernels run, so omega and buf are untouched."""
    if _COMPILED.get("failed"):
        return None
    if "fn" not in _COMPILED:
        _COMPILED["fn"] = torch.compile(_whole_step, dynamic=False)
    try:
        return _COMPILED["fn"](*args)
    except Exception as exc:  # torch.compile raises many backend-specific error types
        _COMPILED["failed"] = True
        warnings.warn(
            f"torch.compile of the background-weight step failed ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); using the eager step, which "
            "gives the same values more slowly. Set accel.compile_weights=false to skip the try.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


class BackgroundWeights(nn.Module):
    """Weights w_i = softplus(omega_i) over a background pool of ``num_items`` items.

    ``eps`` is the sampler coefficient of eqs. 10-12: 0 draws uniformly and reweights fully,
    1 draws by importance (p proportional to w) with r_i = 1. Table 1 uses 0.5.

    The lower-level piece: its methods check shapes only. :class:`BackgroundResampler` also
    refuses out-of-range indices and non-finite losses.
    """

    def __init__(self, num_items: int, eps: float = 0.5) -> None:
        super().__init__()
        if num_items < 1:
            raise ValueError(f"the background pool must hold at least 1 item, got {num_items}")
        self.omega = nn.Parameter(torch.zeros(num_items, dtype=torch.float32))
        self.eps = eps
        self._sums_cache: tuple[tuple, Tensor, Tensor] | None = None

    @property
    def eps(self) -> float:
        """Sampler coefficient in [0, 1]."""
        return self._eps

    @eps.setter
    def eps(self, value: float) -> None:
        self._eps = _check_eps(value)

    def __len__(self) -> int:
        return self.omega.numel()

    def _w64(self, omega: Tensor | None = None) -> Tensor:
        return _w64(self.omega.detach() if omega is None else omega)

    def _chunks(self, chunk: int | None = None) -> list[tuple[int, int]]:
        return _spans(len(self), _chunk_size(self.omega.device, chunk))

    # -- the sums S_eps, S_1, cached -----------------------------------------------------------

    def _cache_key(self) -> tuple:
        o = self.omega
        return (o.data_ptr(), o._version, o.device, o.numel(), self._eps)

    def _set_sums(self, s_eps: Tensor, s_1: Tensor) -> None:
        self._sums_cache = (self._cache_key(), s_eps, s_1)

    def invalidate(self) -> None:
        """Forget the cached sums (only needed after writing omega through ``omega.data``,
        which bypasses the version counter)."""
        self._sums_cache = None

    def sums(self) -> tuple[Tensor, Tensor]:
        """(S_eps, S_1) = (sum_j w_j^eps, sum_j w_j) as 0-d float64 tensors.

        Cached until omega changes; recomputed in chunks (float64) otherwise.
        """
        cache = self._sums_cache
        if cache is not None and cache[0] == self._cache_key():
            return cache[1], cache[2]
        omega = self.omega.detach()
        s_eps = torch.zeros((), dtype=torch.float64, device=omega.device)
        s_1 = torch.zeros_like(s_eps)
        for lo, hi in self._chunks():
            w = self._w64(omega[lo:hi])
            s_1 += w.sum()
            s_eps += w.sum() if self.eps == 1.0 else _pow(w, self.eps).sum()
        if self.eps == 0.0:
            s_eps.fill_(float(len(self)))
        self._set_sums(s_eps, s_1)
        return s_eps, s_1

    # -- weights, probabilities, ratios --------------------------------------------------------

    def weights(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """w = softplus(omega), floored at W_FLOOR, detached (computed in float64, in chunks)."""
        omega = self.omega.detach()
        out = torch.empty(len(self), dtype=dtype, device=omega.device)
        for lo, hi in self._chunks():
            out[lo:hi] = self._w64(omega[lo:hi])
        return out

    def masses(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """Unnormalised p of eq. 11, w_i^eps, on omega's device, in chunks: what
        ``WeightedSampler`` needs (4 bytes per item in float32). float32 is computed in float32
        (w to about 2e-7 relative, as in ``ascent_step``), other dtypes in float64."""
        omega = self.omega.detach()
        if self.eps == 0.0:
            return torch.ones(len(self), dtype=dtype, device=omega.device)
        out = torch.empty(len(self), dtype=dtype, device=omega.device)
        if dtype != torch.float32:
            for lo, hi in self._chunks():
                out[lo:hi] = _pow(self._w64(omega[lo:hi]), self.eps)
            return out
        size = _chunk_size(omega.device, None)
        t, u = self._scratch(min(size, len(self)), omega.device)[2:]
        for lo, hi in _spans(len(self), size):
            w = _softplus_(omega[lo:hi], out[lo:hi], t[: hi - lo], u[: hi - lo])
            if self.eps != 1.0:
                w.pow_(self.eps)
        return out

    def probs(self) -> Tensor:
        """Eq. 11: p_i = w_i^eps / sum_j w_j^eps, float64."""
        out = self.masses(torch.float64)
        return out.div_(out.sum())

    def ratios(self, indices: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Eq. 12: r_i = (sum_j w_j^eps / sum_j w_j) * w_i^(1-eps) for ``indices``.

        O(batch) when the sums are cached (after ``ascent_step``), O(N) otherwise.
        """
        s_eps, s_1 = self.sums()
        w = self._w64(self.omega.detach()[indices])
        return (s_eps / s_1 * _pow(w, 1.0 - self.eps)).to(dtype)

    # -- the weight gradient and the ascent step -----------------------------------------------

    @staticmethod
    def _check_batch(indices: Tensor, losses: Tensor) -> None:
        if indices.ndim != 1 or losses.shape != indices.shape:
            raise ValueError(
                f"indices and losses must be 1-d of equal length, got shapes "
                f"{tuple(indices.shape)} and {tuple(losses.shape)}"
            )

    def _batch_terms(self, indices: Tensor, losses: Tensor) -> tuple[Tensor, ...]:
        s_eps, s_1 = self.sums()
        return _batch_terms(self.omega.detach(), indices, losses, s_eps, s_1, self.eps)

    def grad_omega(self, indices: Tensor, losses: Tensor) -> Tensor:
        """Exact d l_out / d omega for l_out = (1/B) sum_b r_{i_b} L_b (eqs. 10, 12).

        ``losses`` are the detached per-example uniformity losses of the drawn items
        ``indices`` (repeats allowed). r depends on every w through S_eps and S_1, so every
        omega gets a (dense) gradient; drawn items also get a sparse one:

            dl/dw_k = A (eps w_k^(eps-1) / S_1 - S_eps / S_1^2)
                      + (S_eps / S_1) (1 - eps) w_k^(-eps) (1/B) sum_{b: i_b = k} L_b,
            A = (1/B) sum_b L_b w_{i_b}^(1-eps),   dw_k/domega_k = sigmoid(omega_k).

        Returned as float32, shape [N] (computed in float64, in chunks). Ascend it (Algorithm 1);
        ``ascent_step`` does gradient and SGD update in one pass.
        """
        self._check_batch(indices, losses)
        eps = self.eps
        omega = self.omega.detach()
        out = torch.zeros(len(self), dtype=torch.float32, device=omega.device)
        if eps == 1.0:  # r_i = 1: l_out does not depend on w
            return out
        _, grad_i, c0, c1, _ = self._batch_terms(indices, losses)
        for lo, hi in self._chunks():
            om = omega[lo:hi].double()
            g = -c0 if eps == 0.0 else c1 * _pow(self._w64(om), eps - 1.0) - c0
            out[lo:hi] = g * torch.sigmoid(om)
        out[indices] = grad_i.float()
        return out

    @torch.no_grad()
    def ascent_step(
        self,
        indices: Tensor,
        losses: Tensor,
        optimizer: torch.optim.Optimizer,
        *,
        compile: bool = False,
        chunk: int | None = None,
    ) -> None:
        """One weight update of Algorithm 1, equal (to float32 rounding) to

            optimizer.zero_grad(); omega.grad = grad_omega(indices, losses); optimizer.step()

        for ``optimizer = torch.optim.SGD([omega], lr, momentum, maximize=True)``, whose
        ``momentum_buffer`` it reads and writes (so ``optimizer.state_dict()`` and resuming are
        unchanged), in one pass over omega: gradient, momentum, update and the next step's sums
        (cached for ``ratios`` / ``sums``). No N-sized temporary, no host sync. Any other
        optimiser (or SGD with weight decay, dampening, Nesterov or ``maximize=False``) takes the
        plain path above.

        ``compile=True`` (with momentum) runs the whole step, batch terms included, as one
        ``torch.compile``-d function (``_whole_step``, compiled once per eps): for GPUs, where the
        eager step is bound by the memory traffic of the chunked pass's ~25 element-wise kernels
        and by the launches of ~100 small ones for the drawn items (about 3x faster at 80M
        items on an H200 for the pass alone). On a CPU it gains little (the pass is bound by
        exp/log) and compiling takes tens of seconds. Where compiling fails it warns once and
        runs the eager step.
        """
        self._check_batch(indices, losses)
        group = self._plain_sgd_group(optimizer)
        if group is None:
            optimizer.zero_grad(set_to_none=True)
            self.omega.grad = self.grad_omega(indices, losses)
            optimizer.step()
            return
        lr, momentum = float(group["lr"]), float(group["momentum"])
        omega = self.omega.detach()
        eps = self.eps
        buf = None
        first = False
        if momentum != 0.0:
            state = optimizer.state[self.omega]
            buf = state.get("momentum_buffer")
            first = buf is None
            if first:
                buf = state["momentum_buffer"] = torch.empty_like(omega)
        if compile and buf is not None:
            s_eps, s_1 = self.sums()
            lr_t = self._lr_tensor(lr, omega.device)
            sums = _run_compiled(
                omega, buf, indices, losses, s_eps, s_1, lr_t, eps, momentum, first
            )
            if sums is not None:
                self.omega.grad = None
                self._set_sums(sums[1], sums[0])
                return
        omega_i, grad_i, c0, c1, same = self._batch_terms(indices, losses)
        # The drawn items' final values, from their exact gradient (same float32 ops as SGD).
        g_i = grad_i.float()
        if buf is None:
            new_i = omega_i.add(g_i, alpha=lr)
            buf_i = None
        else:
            buf_i = -g_i if first else buf[indices].mul_(momentum).sub_(g_i)
            new_i = omega_i.add(buf_i, alpha=-lr)
        c0, c1 = c0.float(), c1.float()
        if buf is not None and kernels.available(omega):
            # One Triton kernel on CUDA: omega and buf read and written once, in place.
            s_1, s_eps = kernels.dense_pass(omega, buf, c0, c1, lr, eps, momentum, first, W_FLOOR)
        else:
            s_1, s_eps = self._dense_chunks(buf, c0, c1, lr, momentum, first, chunk)
        s_1, s_eps = _patch(omega, buf, indices, same, new_i, buf_i, s_1, s_eps, eps, _softplus32)
        self.omega.grad = None
        self._set_sums(s_eps, s_1)

    def _dense_chunks(
        self,
        buf: Tensor | None,
        c0: Tensor,
        c1: Tensor,
        lr: float,
        momentum: float,
        first: bool,
        chunk: int | None,
    ) -> tuple[Tensor, Tensor]:
        """The dense pass of ``ascent_step`` over chunks of omega (``_fused_chunk``); returns the
        new (S_1, S_eps)."""
        omega = self.omega.detach()
        s_1 = torch.zeros((), dtype=torch.float64, device=omega.device)
        s_eps = torch.zeros_like(s_1)
        size = _chunk_size(omega.device, chunk)
        scratch = self._scratch(min(size, len(self)), omega.device)
        for lo, hi in _spans(len(self), size):
            part = _fused_chunk(
                omega[lo:hi],
                None if buf is None else buf[lo:hi],
                c0,
                c1,
                self.eps,
                lr,
                momentum,
                first,
                scratch,
            )
            s_1 += part[0]
            s_eps += part[1]
        return s_1, s_eps

    def _lr_tensor(self, lr: float, device: torch.device) -> Tensor:
        """``lr`` as a 0-d float32 tensor on ``device``, made once per value (a fresh one each
        step would be a host-to-device copy each step)."""
        cached = getattr(self, "_lr_cache", None)
        if cached is None or cached[0] != lr or cached[1].device != device:
            cached = (lr, torch.tensor(lr, dtype=torch.float32, device=device))
            self._lr_cache = cached
        return cached[1]

    def _scratch(self, size: int, device: torch.device) -> tuple[Tensor, ...]:
        """Chunk-sized float32 buffers of ``ascent_step``, kept between steps (fresh pages cost
        more than the arithmetic on some machines)."""
        cached = getattr(self, "_scratch_bufs", None)
        if cached is None or cached[0].numel() < size or cached[0].device != device:
            cached = tuple(torch.empty(size, dtype=torch.float32, device=device) for _ in range(4))
            self._scratch_bufs = cached
        return cached

    def _plain_sgd_group(self, optimizer: torch.optim.Optimizer) -> dict | None:
        """The param group if ``optimizer`` is SGD(maximize=True) over omega alone, else None."""
        if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
            return None
        group = optimizer.param_groups[0]
        if len(group["params"]) != 1 or group["params"][0] is not self.omega:
            return None
        plain = (
            group.get("maximize", False)
            and not group.get("nesterov", False)
            and not group.get("differentiable", False)
            and float(group.get("weight_decay", 0.0)) == 0.0
            and float(group.get("dampening", 0.0)) == 0.0
        )
        return group if plain else None

    def ess(self) -> float:
        """Effective sample size of p (eq. 11): 1 / sum_i p_i^2 = S_eps^2 / sum_i w_i^(2 eps)."""
        s_eps, _ = self.sums()
        omega = self.omega.detach()
        sq = torch.zeros((), dtype=torch.float64, device=omega.device)
        for lo, hi in self._chunks():
            sq += _pow(self._w64(omega[lo:hi]), 2.0 * self.eps).sum()
        return (s_eps.square() / sq).item()

    def stats(self) -> dict[str, float]:
        """min / median / max of w and the ESS of p, for progress bars and logs.

        softplus is increasing, so these are softplus of omega's min / median / max: O(N)
        without an N-sized float64 copy.
        """
        omega = self.omega.detach()
        picks = self._w64(torch.stack([omega.min(), omega.median(), omega.max()])).tolist()
        return {"w_min": picks[0], "w_median": picks[1], "w_max": picks[2], "ess": self.ess()}

    def get_extra_state(self) -> dict[str, float]:
        """Puts eps in ``state_dict`` (key ``_extra_state``) next to omega."""
        return {"eps": self.eps}

    def set_extra_state(self, state: dict[str, float]) -> None:
        self.eps = state["eps"]
