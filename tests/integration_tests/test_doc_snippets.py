"""Every Python block in the README and the docs runs, and prints what the page shows.

A page's blocks run in order in one namespace, as a reader would paste them. A block
followed by a ```` ```text title="Output" ```` block must print exactly that. A block that
cannot run here (a GPU, a hub download, a server) says so in its fence,
```` ```python title="Not run in tests: <why>" ````, and such blocks must stay few. Pages
that load the bundled model are marked slow.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r'^python\s+title="Not run in tests: (?P<why>[^"]+)"$')
OUTPUT_INFO = 'text title="Output"'
MAX_NOT_RUN = 5
"""Blocks that cannot run in a test are the exception: a reader cannot trust the others less."""


@dataclass
class Block:
    code: str
    output: str | None  # what the page shows it prints; None when it shows nothing
    line: int


def pages() -> list[Path]:
    docs = sorted(p for p in (ROOT / "docs").rglob("*.md") if "hooks" not in p.parts)
    return [ROOT / "README.md", *docs]


def fences(page: Path) -> list[tuple[str, str, int]]:
    text = page.read_text()
    return [
        (m["info"].strip(), m["body"], text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]


def python_blocks(page: Path) -> list[Block]:
    found = fences(page)
    blocks = []
    for i, (info, body, line) in enumerate(found):
        if info != "python":
            continue
        after = found[i + 1] if i + 1 < len(found) else None
        output = after[1] if after and after[0] == OUTPUT_INFO else None
        blocks.append(Block(code=body, output=output, line=line))
    return blocks


def needs_model(page: Path) -> bool:
    return any("integrations.llamacpp" in b.code for b in python_blocks(page))


def page_param(page: Path) -> object:
    marks = [pytest.mark.llamacpp, pytest.mark.slow] if needs_model(page) else []
    return pytest.param(page, marks=marks, id=str(page.relative_to(ROOT)))


RUNNABLE = [page_param(p) for p in pages() if python_blocks(p)]


@pytest.mark.parametrize("page", RUNNABLE)
def test_page_snippets_run_and_print_what_the_page_shows(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if needs_model(page):
        pytest.importorskip("llama_cpp")
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    namespace: dict[str, object] = {"__name__": f"doc:{page.name}"}
    name = str(page.relative_to(ROOT))
    for block in python_blocks(page):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block.code, f"{name}:{block.line}", "exec"), namespace)
        if block.output is not None:
            assert printed.getvalue().rstrip() == block.output.rstrip(), f"{name}:{block.line}"


def test_blocks_that_do_not_run_are_few_and_say_why() -> None:
    skipped = []
    for page in pages():
        for info, _, line in fences(page):
            if info.startswith("python") and info != "python":
                match = NOT_RUN.match(info)
                assert match, f"{page}:{line}: a Python fence is `python` or says why not run"
                skipped.append(f"{page.name}:{line}: {match['why']}")
    assert len(skipped) <= MAX_NOT_RUN, skipped


def test_every_output_block_follows_a_python_block() -> None:
    for page in pages():
        found = fences(page)
        for i, (info, _, line) in enumerate(found):
            if info == OUTPUT_INFO:
                assert i > 0 and found[i - 1][0] == "python", f"{page}:{line}"


def test_the_readme_and_the_quickstart_have_runnable_examples() -> None:
    assert len(python_blocks(ROOT / "README.md")) >= 2
    assert sum(len(python_blocks(p)) for p in pages()) >= 15


def test_the_configuration_table_is_the_runnables_fields() -> None:
    """Every field is documented, and a default written as a literal is the class's."""
    from langchain_adaptive import AdaptiveReasoningRunnable

    text = (ROOT / "docs" / "reference" / "configuration.md").read_text()
    table = text.split("## AdaptiveReasoningRunnable", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", table, re.M)
    fields = {
        name: field
        for name, field in AdaptiveReasoningRunnable.model_fields.items()
        if name != "name"  # LangChain's run name, not ours
    }
    assert [name for name, _ in rows] == list(fields)
    for name, shown in rows:
        literal = re.fullmatch(r"`(.+)`", shown.strip())
        if literal is None:
            continue
        field = fields[name]
        actual = field.default_factory() if field.default_factory else field.default
        assert ast.literal_eval(literal[1]) == actual, name
