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


def _imported(path: Path) -> set[str]:
    """Top-level packages a source file imports (absolute imports, at any depth)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_core_and_the_adapters_never_import_the_application_or_each_other():
    """avp_core imports no framework, adapter or avp_suite; an adapter imports avp_core and
    its own framework, never another adapter or avp_suite (see docs/architecture.md)."""
    adapters = {"avp_langgraph", "avp_crewai", "avp_autogen"}
    frameworks = {"langchain_core", "langgraph", "crewai", "autogen_agentchat", "autogen_core"}
    for path in (ROOT / "avp_core").rglob("*.py"):
        wrong = _imported(path) & (adapters | frameworks | {"avp_suite"})
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"
    for adapter in adapters:
        for path in (ROOT / "integrations" / adapter).rglob("*.py"):
            wrong = _imported(path) & ((adapters - {adapter}) | {"avp_suite"})
            assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"
