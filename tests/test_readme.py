"""README.rst's snippets are run, so that what a new user copies works.

Every ``.. code-block::`` of Python, ini or TOML in the README is preceded by an RST comment (not
rendered) that says what it is:

- ``.. readme-file: GROUPS PATH``: the block is (part of) the file PATH of each project named in
  GROUPS (comma-separated); blocks of one group with the same path are joined in order, so a
  later block can redefine a function shown earlier.
- ``.. readme-fragment: REASON``: a fragment that is not run, and why (for example the example
  project under ``examples/`` that runs the same code).

and every group has a ``.. readme-run: GROUP OUTCOME=N ...`` comment giving the outcomes its run
must have, and optionally a ``.. readme-output: GROUP`` comment before a literal block (``::``)
that shows the run's output: each of its lines must appear in the output, in order (durations
and, on SQLite, the parameter style are the only differences allowed). Each group runs as a
project of its own through pytester, on SQLite and PostgreSQL, with the backend's URL in
$PYTEST_DB_URL (which the snippets do not set, as a user's would not).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from helpers import Backend

README = Path(__file__).parent.parent / "README.rst"
DIRECTIVE = re.compile(r"^\.\. (readme-[a-z]+): *(.*)$")
CODE_BLOCK = re.compile(r"^( *)\.\. code-block:: *(\w+)\s*$")
CHECKED_LANGUAGES = {"python", "ini", "toml"}


@dataclass
class Block:
    line: int
    language: str
    text: str
    marks: list[tuple[str, str]]


@dataclass
class Group:
    name: str
    files: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    shown_output: list[str] = field(default_factory=list)


def _blocks(lines: list[str]) -> list[Block]:
    blocks = []
    for number, line in enumerate(lines):
        match = CODE_BLOCK.match(line)
        if match is None:
            continue
        indent = len(match.group(1))
        body = []
        for following in lines[number + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        marks = []
        for previous in reversed(lines[:number]):
            directive = DIRECTIVE.match(previous.strip())
            if directive is None:
                break
            marks.append((directive.group(1), directive.group(2)))
        text = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        blocks.append(Block(number + 1, match.group(2), text, marks))
    return blocks


def _groups(lines: list[str], blocks: list[Block]) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    for block in blocks:
        for kind, value in block.marks:
            if kind != "readme-file":
                continue
            names, path = value.split()
            for name in names.split(","):
                files = groups.setdefault(name, Group(name)).files
                files[path] = files.get(path, "") + ("\n\n" if path in files else "") + block.text
    for number, line in enumerate(lines):
        directive = DIRECTIVE.match(line.strip())
        if directive is None:
            continue
        kind, value = directive.groups()
        if kind == "readme-run":
            name, *outcomes = value.split()
            for outcome in outcomes:
                key, count = outcome.split("=")
                groups[name].outcomes[key] = int(count)
        elif kind == "readme-output":
            groups[value].shown_output = _literal_block(lines, number)
    return groups


def _literal_block(lines: list[str], start: int) -> list[str]:
    """The lines of the first literal block (after a line ending in ``::``) after ``start``."""
    opening = next(n for n in range(start, len(lines)) if lines[n].rstrip().endswith("::"))
    block = []
    for line in lines[opening + 2 :]:
        if line.strip() and not line.startswith(" "):
            break
        block.append(line.strip())
    return [line for line in block if line]


def _as_pattern(line: str, backend: str) -> str:
    """A line the README shows, as an fnmatch pattern for this run's output."""
    pattern = re.sub(r"\(\d+\.\d+ ms\)", "(* ms)", line)
    if backend == "sqlite":  # qmark parameters, given as a tuple
        pattern = re.sub(r"%\(param_1\)s(::\w+)?", "?", pattern)
        pattern = re.sub(r"\{'param_1': (\d+)\}", r"(\1,)", pattern)
    return "*" + pattern.replace("[", "[[]")


LINES = README.read_text().splitlines()
BLOCKS = _blocks(LINES)
GROUPS = _groups(LINES, BLOCKS)


def test_every_snippet_is_run_or_marked_as_a_fragment() -> None:
    unmarked = [
        f"README.rst:{block.line} ({block.language})"
        for block in BLOCKS
        if block.language in CHECKED_LANGUAGES
        and not any(kind in ("readme-file", "readme-fragment") for kind, _ in block.marks)
    ]
    assert unmarked == []
    fragments_without_reason = [
        block.line
        for block in BLOCKS
        for kind, reason in block.marks
        if kind == "readme-fragment" and len(reason.split()) < 3
    ]
    assert fragments_without_reason == []
    # Every group is run with a stated outcome, and the comments name only existing groups.
    assert GROUPS
    assert [name for name, group in GROUPS.items() if not group.outcomes or not group.files] == []


def test_the_readme_renders_without_a_warning() -> None:
    import docutils.core
    import docutils.utils

    try:
        docutils.core.publish_string(
            README.read_text(),
            writer="null",
            settings_overrides={"halt_level": 2, "report_level": 2, "warning_stream": False},
        )
    except docutils.utils.SystemMessage as problem:
        pytest.fail(f"README.rst: {problem}")


def test_every_python_snippet_compiles() -> None:
    for block in BLOCKS:
        if block.language != "python":
            continue
        text = block.text
        if any(kind == "readme-fragment" for kind, _ in block.marks):
            # A fragment may be the body of a function (env.py's three lines end in return).
            text = "def fragment():\n" + textwrap.indent(text, "    ")
        compile(text, f"README.rst:{block.line}", "exec", dont_inherit=True)


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_the_snippets_of_a_project_have_no_unused_or_undefined_names(
    name: str, tmp_path: Path
) -> None:
    for path, text in GROUPS[name].files.items():
        if path.endswith(".py"):
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text(text)
    # Pyflakes' checks only; F811: a later block may redefine a function on purpose.
    pyflakes = ["--select", "F", "--ignore", "F811"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--isolated",
            *pyflakes,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_the_readme_project_runs_as_shown(
    name: str, backend: Backend, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GROUPS[name]
    for path, text in group.files.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if not any(path in group.files for path in ("pytest.ini", "pyproject.toml", "tox.ini")):
        pytester.makeini("[pytest]\n")
    pytester.syspathinsert()
    monkeypatch.setenv("PYTEST_DB_URL", backend.url)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(**group.outcomes)
    if group.shown_output:
        result.stdout.fnmatch_lines(
            [_as_pattern(line, backend.name) for line in group.shown_output]
        )
