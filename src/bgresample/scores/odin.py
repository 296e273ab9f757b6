"""ODIN: temperature scaling and input preprocessing.

Liang, Li and Srikant, "Enhancing The Reliability of Out-of-distribution Image Detection in Neural
Networks", ICLR 2018.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _log_max_softmax(model: nn.Module, x: Tensor, T: float) -> Tensor:
    return torch.log_softmax(model(x).float() / T, dim=-1).amax(dim=-1)


def odin_perturb(model: nn.Module, x: Tensor, T: float = 1000.0, eps: float = 0.0014) -> Tensor:
    """ODIN's preprocessed inputs ``x' = x - eps * sign(-grad_x log max_k softmax(f(x) / T)_k)``.

    That is one step of size ``eps`` (in the model's input space, i.e. after normalisation) in the
    sign of the gradient of the log-MSP at temperature ``T``, which raises the MSP of ID inputs
    more than that of OOD inputs. The model is put in eval mode for the step (batch items must not
    interact through BatchNorm) and its mode restored; no parameter gradients are accumulated.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            xg = x.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(_log_max_softmax(model, xg, T).sum(), xg)
    finally:
        model.train(was_training)
    return (x.detach() - eps * torch.sign(-grad)).detach()


def odin(model: nn.Module, x: Tensor, T: float = 1000.0, eps: float = 0.0014) -> Tensor:
    """ODIN score ``max_k softmax(f(x') / T)_k`` of the inputs ``x`` (see :func:`odin_perturb`);
    higher = more ID. ``eps=0`` is MSP at temperature ``T``. Defaults: the paper's CIFAR setting.

    Needs the model and the inputs (a backward pass), not just logits; run in fp32.
    """
    if T <= 0:
        raise ValueError(f"temperature T must be > 0, got {T}")
    x_pert = odin_perturb(model, x, T, eps) if eps else x.detach()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x_pert).double()
    finally:
        model.train(was_training)
    return torch.softmax(logits / T, dim=-1).amax(dim=-1)
