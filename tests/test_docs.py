"""The docs cannot drift from the code.

Every fenced block in docs/ and README is one of: a Python block this file runs (blocks of a
page share one namespace, in order; what a ``print`` line prints must be what the page says
beside or below it), an include of a file under ``examples/`` (mkdocs
``pymdownx.snippets``; ``test_examples.py`` runs the file), a bash block whose every command
is checked against the real parsers, files, extras and tox envs, or a ``text`` block (output
or a diagram, not code). Framework guides run in their framework's tox env
(AVP_SUITE_FRAMEWORK=<name>), where a missing import fails; elsewhere a guide whose framework
is not installed is skipped.
"""

from __future__ import annotations

import os
import re
import shlex
from importlib import import_module, metadata
from pathlib import Path

import pytest
from frameworks_here import FRAMEWORK_MODULES, pinned_version

from avp_suite.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md") if "```python" in p.read_text())
ALL_PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
FRAMEWORK_PAGES = {f"{name}.md": module for name, module in FRAMEWORK_MODULES.items()}
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$')


def _included(body: str) -> list[str]:
    """The files a block includes, or [] when it is not (only) snippet includes."""
    lines = [line.strip() for line in body.strip().splitlines()]
    matches = [INCLUDE.match(line) for line in lines]
    return [m.group(1) for m in matches if m] if lines and all(matches) else []


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    only = os.environ.get("AVP_SUITE_FRAMEWORK")  # set by a framework's tox env
    if only and page.name != f"{only}.md":
        pytest.skip(f"the {only} env runs only its own guide")
    module = FRAMEWORK_PAGES.get(page.name)
    if module and not only:
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    printed = _Printed()
    namespace: dict = {"__name__": f"docs_{page.stem}", "print": printed}
    exact = pinned_version(page.stem if page.name in FRAMEWORK_PAGES else None)
    for index, (lang, block) in enumerate(BLOCK.findall(page.read_text())):
        if lang == "python" and not _included(block):
            name = f"{page.name}[block {index}]"
            exec(compile(block, name, "exec"), namespace)
            for line, expected in _expected_output(block, exact).items():
                actual = printed.lines.get((name, line), "").strip("\n").splitlines()
                actual = actual if exact else [re.sub(r"\d+", "N", text) for text in actual]
                assert len(actual) == len(expected) and all(
                    re.fullmatch(pattern, text.strip()) for pattern, text in zip(expected, actual)
                ), f"{name} line {line} printed {actual}; the page says {expected}"


class _Printed:
    """``print`` for docs blocks: prints, and records what each block line printed."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str, int], str] = {}

    def __call__(self, *args, sep=" ", end="\n", file=None, flush=False) -> None:
        import builtins
        import sys

        builtins.print(*args, sep=sep, end=end, file=file, flush=flush)
        caller = sys._getframe(1)
        where = (caller.f_code.co_filename, caller.f_lineno)
        self.lines[where] = self.lines.get(where, "") + sep.join(map(str, args)) + end


def _expected_output(block: str, exact: bool = True) -> dict[int, list[str]]:
    """What the page says each ``print`` line prints, as patterns (``...`` matches anything):
    a comment at the end of the line, or the comment lines right below it. Not ``exact``:
    every number reads N (a framework version the page was not recorded with)."""
    lines = block.splitlines()
    expected: dict[int, list[str]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.lstrip().startswith("print("):
            continue
        if match := re.search(r"\)\s+# (.+)$", line):
            said = [match.group(1)]
        else:
            said = []
            for below in lines[number:]:
                if not below.startswith("# "):
                    break
                said.append(below[2:])
        said = said if exact else [re.sub(r"\d+", "N", text) for text in said]
        if said:
            expected[number] = [".*".join(map(re.escape, s.strip().split("..."))) for s in said]
    return expected


@pytest.mark.parametrize("page", ALL_PAGES, ids=[p.name for p in ALL_PAGES])
def test_every_block_is_run_included_or_checked(page):
    for lang, body in BLOCK.findall(page.read_text()):
        if included := _included(body):
            for path in included:
                assert path.startswith("examples/"), f"{page.name}: include {path} from examples/"
                assert (ROOT / path).is_file(), f"{page.name}: {path} does not exist"
        elif lang == "bash":
            for command in _commands(body):
                _check_command(page.name, command)
        elif lang not in ("python", "text"):
            pytest.fail(f"{page.name}: a ```{lang} block is neither run, included nor checked")


def _commands(body: str) -> list[list[str]]:
    """Each command of a bash block, comments dropped, split at ``&&``."""
    commands: list[list[str]] = [[]]
    for line in body.splitlines():
        for word in shlex.split(line, comments=True):
            if word == "&&":
                commands.append([])
            else:
                commands[-1].append(word)
        commands.append([])
    return [c for c in commands if c]


def _check_command(page: str, argv: list[str]) -> None:
    where = f"{page}: {shlex.join(argv)}"
    if argv[:3] == ["python", "-m", "pip"]:
        _check_pip(where, argv[3:])
    elif argv[:3] == ["python", "-m", "tox"]:
        envs = argv[argv.index("-e") + 1].split(",") if "-e" in argv else []
        assert set(envs) <= _tox_envs(), f"{where}: unknown tox env"
    elif argv[0] == "avp-suite":
        _parses(where, lambda: _check_cli(argv[1:]))
    elif argv[0] == "python" and argv[1].startswith("benchmarks/"):
        assert (ROOT / argv[1]).is_file(), f"{where}: no such benchmark script"
        module = import_module(f"avp_suite.bench.{Path(argv[1]).stem}")
        _parses(where, lambda: module.build_parser().parse_args(argv[2:]))
    elif argv[0] == "python" and argv[1].startswith("examples/"):
        assert (ROOT / argv[1]).is_file(), f"{where}: no such example"
    elif argv[:2] == ["docker", "run"]:  # the servers the store tests need
        assert argv[-1].split(":")[0] in ("postgres", "redis"), f"{where}: unknown image"
    elif argv[0] == "export":
        name = argv[1].split("=", 1)[0]
        sources = (path.read_text() for path in (ROOT / "avp_core").rglob("*.py"))
        assert any(f'"{name}"' in text for text in sources), f"{where}: avp_core never reads it"
    else:
        pytest.fail(f"{where}: a command this test does not know how to check")


def _check_cli(args: list[str]) -> None:
    parsed, options = build_parser().parse_known_args(args)
    if parsed.command == "bench" and parsed.name != "all":
        import_module(f"avp_suite.bench.{parsed.name}").build_parser().parse_args(options)
    else:
        assert not options, f"unrecognized arguments {options}"


def _parses(where: str, parse) -> None:
    try:
        parse()
    except SystemExit as exc:  # argparse rejected the arguments
        pytest.fail(f"{where}: the arguments do not parse ({exc})")


def _check_pip(where: str, args: list[str]) -> None:
    assert args[0] == "install", where
    extras = set(metadata.metadata("avp-suite").get_all("Provides-Extra") or [])
    if "-c" in args:
        assert (ROOT / args[args.index("-c") + 1]).is_file(), f"{where}: no constraints file"
    for spec in args:
        if match := re.fullmatch(r"\.\[([\w,-]+)\]", spec):
            unknown = set(match.group(1).split(",")) - extras
            assert not unknown, f"{where}: no such extras {unknown}"


def _tox_envs() -> set[str]:
    """tox.ini's envlist with {a,b} factors expanded."""
    text = (ROOT / "tox.ini").read_text()
    listed = re.search(r"envlist =\n((?:\s+.+\n)+)", text).group(1).split()
    envs: set[str] = set()
    for entry in listed:
        if match := re.fullmatch(r"(.*)\{(.+)\}(.*)", entry):
            envs |= {f"{match[1]}{factor}{match[3]}" for factor in match[2].split(",")}
        else:
            envs.add(entry)
    return envs
