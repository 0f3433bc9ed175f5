"""mkdocs hook: the CLI reference is the CLI's own ``--help``, generated at build time.

The line ``<!-- cli-reference -->`` becomes one section per command and subcommand the CLI
lists (``langchain-adaptive --help``, then each ``{a,b,...}`` choice, recursively), each
holding that command's ``--help``. A command added to the CLI appears without editing the
page, and the page cannot describe options the code no longer has.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from typing import Any

from mkdocs.exceptions import PluginError

MARKER = "<!-- cli-reference -->"
CHOICES = re.compile(r"^  \{(?P<choices>[a-z0-9,-]+)\}$", re.M)


def _help(command: list[str]) -> str:
    from langchain_adaptive.cli import main

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; keep the page stable
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([*command, "--help"])
    text = out.getvalue().rstrip()
    if not text.startswith("usage:"):
        raise PluginError(f"`langchain-adaptive {' '.join(command)} --help` printed no usage")
    return text


def _sections(command: list[str]) -> list[str]:
    text = _help(command)
    title = " ".join(["langchain-adaptive", *command])
    level = "#" * min(2 + len(command), 4)
    out = [f"{level} {title}", "", f"```text\n{text}\n```", ""]
    for found in CHOICES.finditer(text):
        for name in found["choices"].split(","):
            out += _sections([*command, name])
    return out


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, "\n".join(_sections([])))
