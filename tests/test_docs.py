"""Every Python block in the docs runs (blocks of a page share one namespace, in order).

Framework guides run in their framework's tox env (AVP_SUITE_FRAMEWORK=<name>), where a
missing import fails; elsewhere a guide whose framework is not installed is skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md") if "```python" in p.read_text())
FRAMEWORK_PAGES = {
    "langgraph.md": "langgraph",
    "crewai.md": "crewai",
    "autogen.md": "autogen_agentchat",
}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    only = os.environ.get("AVP_SUITE_FRAMEWORK")  # set by a framework's tox env
    if only and page.name != f"{only}.md":
        pytest.skip(f"the {only} env runs only its own guide")
    module = FRAMEWORK_PAGES.get(page.name)
    if module and not only:
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for index, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
        exec(compile(block, f"{page.name}[block {index}]", "exec"), namespace)
