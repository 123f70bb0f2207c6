"""Every Python block in the docs runs (blocks of a page share one namespace, in order).

Framework guides run in their framework's tox env: a page whose imports are missing is
skipped here, and AVP_SUITE_REQUIRE_FRAMEWORKS=1 (set by tox) makes a missing import fail.
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
    module = FRAMEWORK_PAGES.get(page.name)
    if module and os.environ.get("AVP_SUITE_REQUIRE_FRAMEWORKS") != "1":
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for index, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
        exec(compile(block, f"{page.name}[block {index}]", "exec"), namespace)
