"""torchvision is optional: nothing on the embedded path imports it, and the features that need
it say which torchvision to install when it is missing or built for another torch."""

import subprocess
import sys
import textwrap

import pytest
import torch

from bgresample import optional
from bgresample.data import kinds
from bgresample.errors import UserError
from bgresample.models import create_model


def test_no_module_imports_torchvision():
    """Every bgresample module imports with torchvision blocked (as in a venv whose torchvision
    does not match its torch), and the embedded benchmark builds."""
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        sys.modules["torchvision"] = None
        import bgresample
        for m in pkgutil.walk_packages(bgresample.__path__, "bgresample."):
            if not m.name.endswith("__main__"):
                importlib.import_module(m.name)
        from bgresample.data.embedded import EmbeddedConfig, generate
        generate(EmbeddedConfig(pool_size=400, ood_size=20, noise_ood_size=10))
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("blocker", "problem"),
    [
        (ImportError("No module named 'torchvision'", name="torchvision"), "is not installed"),
        (RuntimeError("operator torchvision::nms does not exist"), "does not load beside"),
    ],
)
def test_missing_or_mismatched_torchvision_names_the_release_to_install(
    monkeypatch, blocker, problem
):
    def fail(name, *args, **kwargs):
        raise blocker

    monkeypatch.setattr(optional.importlib, "import_module", fail)
    minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    pin = optional.TORCHVISION_FOR_TORCH[minor]
    with pytest.raises(UserError, match=problem) as e:
        kinds.load_id("cifar10", "/nowhere")
    assert "cifar10" in str(e.value) and f"torchvision=={pin}.*" in str(e.value)
    with pytest.raises(
        UserError, match=f"model.name=torchvision:resnet18 needs torchvision.*{pin}"
    ):
        create_model("torchvision:resnet18", 3)


def test_a_dependency_missing_inside_torchvision_is_not_hidden(monkeypatch):
    def fail(name, *args, **kwargs):
        raise ImportError("No module named 'PIL'", name="PIL")

    monkeypatch.setattr(optional.importlib, "import_module", fail)
    with pytest.raises(ImportError, match="PIL"):
        optional.torchvision("x")


def test_expected_files_are_torchvisions():
    """The file lists spelled out in kinds.py are the ones torchvision's classes read."""
    from torchvision.datasets import CIFAR10, CIFAR100, SVHN

    for name, cls in (("cifar10", CIFAR10), ("cifar100", CIFAR100)):
        files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        assert kinds.EXPECTED_FILES[name] == tuple(f"{cls.base_folder}/{f}" for f in files)
    assert kinds.EXPECTED_FILES["svhn"] == tuple(SVHN.split_list[s][1] for s in ("train", "test"))
