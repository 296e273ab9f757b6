"""The selector tests' shared toys (``selector_toys.py``), importable by name: the suite runs
with ``--import-mode=importlib``, which puts no test folder on ``sys.path``."""

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "selector_toys", Path(__file__).with_name("selector_toys.py")
)
_toys = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_toys)
sys.modules.setdefault("selector_toys", _toys)
