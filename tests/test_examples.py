"""Every example runs offline and prints what the docs show (each framework's in its tox env).

An example whose output the docs show (``examples/output/<name>.txt``, included by
docs/quickstart.md) must print exactly that: the built-in models are deterministic. The shown
output is recorded with the framework versions in constraints.txt; under other versions (the
``min`` tox envs) the framework's own prompt differs, so only the numbers may differ.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from frameworks_here import FRAMEWORK_MODULES, installed, pinned_version

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
SERVICES = "services_"
"""Examples named ``services_<framework>_*`` need PostgreSQL or Redis (marked ``services``):
the tox ``stores`` env runs them; elsewhere they are skipped."""


def _framework(path: Path) -> str | None:
    """The framework an example uses (its file-name prefix), or None for core examples."""
    name = path.name.removeprefix(SERVICES)
    return next((fw for fw in FRAMEWORK_MODULES if name.startswith(fw)), None)


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(p, marks=pytest.mark.services) if p.name.startswith(SERVICES) else p
        for p in EXAMPLES
    ],
    ids=[p.name for p in EXAMPLES],
)
def test_example_runs(example):
    only = os.environ.get("AVP_SUITE_FRAMEWORK")  # set by a framework's tox env
    if example.name.startswith(SERVICES) and os.environ.get("AVP_SUITE_REQUIRE_SERVICES") != "1":
        pytest.skip("examples that need PostgreSQL or Redis run in the tox stores env")
    if only and not example.name.startswith(only):
        pytest.skip(f"the {only} env runs only its own examples")
    framework = _framework(example)
    if framework and not only and framework not in installed():
        module = FRAMEWORK_MODULES[framework]
        pytest.skip(f"{module} is not installed here (its tox env runs this example)")
    result = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "an example should print what it shows"
    shown = example.parent / "output" / f"{example.stem}.txt"
    if shown.exists():
        expected, printed = shown.read_text(), result.stdout
        if not pinned_version(framework):
            expected, printed = re.sub(r"\d+", "N", expected), re.sub(r"\d+", "N", printed)
        assert printed == expected, f"{shown} no longer matches what it prints"
