"""Optional dependencies, imported only where a feature needs them.

torchvision is not a hard dependency: pip cannot pick the torchvision built for a torch that is
already installed, so requiring it would make ``pip install bgresample`` replace that torch. The
embedded benchmark, the method and the reports never import it; CIFAR / SVHN / DTD / Places365
and ``model.name=torchvision:NAME`` do, through :func:`torchvision`. Weights & Biases
(``log.wandb``) comes through :func:`wandb`.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

import torch

from bgresample.errors import UserError

log = logging.getLogger("bgresample")

#: torchvision releases built for each torch minor release (torchvision's compatibility table).
TORCHVISION_FOR_TORCH = {
    "2.3": "0.18",
    "2.4": "0.19",
    "2.5": "0.20",
    "2.6": "0.21",
    "2.7": "0.22",
    "2.8": "0.23",
    "2.9": "0.24",
    "2.10": "0.25",
    "2.11": "0.26",
    "2.12": "0.27",
    "2.13": "0.28",
    "2.14": "0.29",
}


def _install_hint() -> str:
    minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    vision = TORCHVISION_FOR_TORCH.get(minor)
    pin = f"torchvision=={vision}.*" if vision else "the torchvision release built for it"
    return (
        f"install the torchvision built for your torch {torch.__version__} "
        f"(pip install '{pin}', from the same index as your torch; see "
        "https://github.com/pytorch/vision#installation)"
    )


def torchvision(purpose: str, submodule: str = "") -> ModuleType:
    """``torchvision`` (or ``torchvision.<submodule>``), else a UserError saying why ``purpose``
    cannot run and which torchvision to install."""
    name = f"torchvision.{submodule}" if submodule else "torchvision"
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if e.name is not None and e.name.split(".")[0] != "torchvision":
            raise  # torchvision is there; something it imports is not
        problem = "torchvision is not installed"
    except RuntimeError as e:  # a torchvision built for another torch: its C++ ops do not load
        problem = f"torchvision does not load beside this torch ({e})"
    raise UserError(f"{purpose} needs torchvision, but {problem}; {_install_hint()}") from None


def wandb() -> ModuleType | None:
    """``wandb``, or None after one warning saying how to install it (``log.wandb=true``
    without wandb: the run goes on without it)."""
    try:
        return importlib.import_module("wandb")
    except ImportError as e:
        if e.name is not None and e.name.split(".")[0] != "wandb":
            raise  # wandb is there; something it imports is not
    log.warning(
        "log.wandb=true but wandb is not installed (pip install wandb); going on without it"
    )
    return None
