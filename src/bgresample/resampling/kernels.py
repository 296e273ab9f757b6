"""The dense pass of the weight step as one Triton kernel (CUDA).

``BackgroundWeights.ascent_step`` updates every omega_k with the dense part of its gradient,
g_k = sigmoid(omega_k) (c1 w_k^(eps-1) - c0), and SGD momentum, then needs S_1 = sum_k w_k and
S_eps = sum_k w_k^eps at the new omega (paper eqs. 10-12; see ``weights.py``). On a GPU that pass
is bound by memory traffic; this kernel reads omega and the momentum buffer once, writes both in
place and leaves one float64 partial sum of each kind per block: 16 bytes of traffic per item,
no temporary (torch.compile's version of the same pass kept two N-sized temporaries).

Accuracy: only operations that Triton's interpreter also runs (``TRITON_INTERPRET=1``, how the
tests check the kernel on a CPU). log1p(t) for t = exp(-|x|) in (0, 1] is 2 atanh(t / (2 + t))
by its odd series in s = t / (2 + t) <= 1/3, truncated after s^15 (relative error < 2e-9), so
softplus keeps full float32 precision where log(1 + t) would lose it.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the chunked torch pass is used
    triton = None

BLOCK = 4096

MODES = {0.0: 0, 0.5: 1, 1.0: 3}
"""eps -> kernel variant (0: eps = 0, 1: eps = 0.5 by square roots, 2: any eps, 3: eps = 1)."""


def available(omega: Tensor) -> bool:
    """Whether the kernel can run on ``omega`` (a CUDA tensor, Triton installed)."""
    return triton is not None and omega.is_cuda


if triton is not None:

    @triton.jit
    def _softplus(x, w_floor):
        t = tl.exp(-tl.abs(x))
        s = t / (2.0 + t)
        z = s * s
        p = 1.0 / 15.0
        p = p * z + 1.0 / 13.0
        p = p * z + 1.0 / 11.0
        p = p * z + 1.0 / 9.0
        p = p * z + 1.0 / 7.0
        p = p * z + 1.0 / 5.0
        p = p * z + 1.0 / 3.0
        p = p * z + 1.0
        return tl.maximum(tl.maximum(x, 0.0) + 2.0 * s * p, w_floor)

    @triton.jit
    def _pow(w, e, MODE: tl.constexpr, NEG: tl.constexpr):
        # w^(eps - 1) (NEG) or w^eps
        if MODE == 1:
            if NEG:
                r = tl.rsqrt(w)
            else:
                r = tl.sqrt(w)
        else:
            r = tl.exp2(e * tl.log2(w))
        return r

    @triton.jit
    def _dense_kernel(
        omega_ptr,
        buf_ptr,
        coef_ptr,
        part_ptr,
        n,
        lr,
        momentum,
        eps,
        w_floor,
        FIRST: tl.constexpr,
        MODE: tl.constexpr,
        BLOCK_SIZE: tl.constexpr,
    ):
        pid = tl.program_id(0)
        offs = pid.to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        mask = offs < n
        x = tl.load(omega_ptr + offs, mask=mask, other=0.0)
        c0 = tl.load(coef_ptr)
        c1 = tl.load(coef_ptr + 1)
        if MODE == 3:
            g = tl.zeros_like(x)
        elif MODE == 0:
            g = -c0 / (1.0 + tl.exp(-x))
        else:
            w = _softplus(x, w_floor)
            g = (_pow(w, eps - 1.0, MODE, True) * c1 - c0) / (1.0 + tl.exp(-x))
        if FIRST:
            b = -g
        else:
            b = tl.load(buf_ptr + offs, mask=mask, other=0.0) * momentum - g
        x = x - lr * b
        tl.store(buf_ptr + offs, b, mask=mask)
        tl.store(omega_ptr + offs, x, mask=mask)
        w = _softplus(x, w_floor)
        tl.store(part_ptr + pid, tl.sum(tl.where(mask, w.to(tl.float64), 0.0)))
        if MODE == 1 or MODE == 2:
            w_eps = _pow(w, eps, MODE, False)
            s_eps = tl.sum(tl.where(mask, w_eps.to(tl.float64), 0.0))
            tl.store(part_ptr + tl.num_programs(0) + pid, s_eps)


def dense_pass(
    omega: Tensor,
    buf: Tensor,
    c0: Tensor,
    c1: Tensor,
    lr: float,
    eps: float,
    momentum: float,
    first: bool,
    w_floor: float,
) -> tuple[Tensor, Tensor]:
    """In place on ``omega`` and ``buf`` (contiguous float32, one device): buf = momentum buf - g
    (buf = -g on the first step), omega -= lr buf, with g the dense gradient; returns (S_1, S_eps)
    of the new omega as 0-d float64 tensors. ``c0``, ``c1`` are 0-d tensors on the device (read
    by the kernel: no host sync)."""
    n = omega.numel()
    blocks = triton.cdiv(n, BLOCK)
    mode = MODES.get(eps, 2)
    coef = torch.stack([c0.float(), c1.float()])
    part = torch.zeros(2 * blocks, dtype=torch.float64, device=omega.device)
    _dense_kernel[(blocks,)](
        omega, buf, coef, part, n, lr, momentum, eps, w_floor, first, mode, BLOCK
    )
    s_1 = part[:blocks].sum()
    if mode == 3:
        return s_1, s_1.clone()
    if mode == 0:
        return s_1, torch.full_like(s_1, float(n))
    return s_1, part[blocks:].sum()
