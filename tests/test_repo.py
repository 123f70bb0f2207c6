"""Repository promises: CI runs README's test command; README's example runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block, "README must open with a bash block of the two commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_two_commands_and_ci_runs_the_test_one():
    demo, tests = _commands()
    assert "avp-suite demo" in demo and "tox" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_readme_python_example_runs(capsys):
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    reused, prefilled = (int(x) for x in re.findall(r"\d+", capsys.readouterr().out)[:2])
    assert reused > 0 and prefilled < reused


def test_every_public_name_resolves_and_the_packages_are_typed():
    import importlib

    from frameworks_here import FRAMEWORK_MODULES, installed

    packages = ["avp_core", *(f"avp_{name}" for name in installed() if name in FRAMEWORK_MODULES)]
    for package in packages:
        module = importlib.import_module(package)
        assert module.__all__, package
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{package}.{name}"
        assert (Path(module.__file__).parent / "py.typed").is_file(), package
    import avp_core

    assert avp_core.__version__ != "0+unknown"
