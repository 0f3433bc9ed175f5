"""mkdocs hook: pages other people are still writing, and every results page, in the nav.

- A page in ``OPTIONAL`` that does not exist yet is left out of the nav, so the strict
  build does not fail on it; any other missing page still fails the build.
- Every ``results/*.md`` that the nav does not name is added to the Results section, so
  a new experiment page is never orphaned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

OPTIONAL = {
    "guides/importing-samples.md",
    "reliability.md",
    "serving.md",
    "results/real-pools.md",
}


def _prune(items: list[Any], docs: Path) -> list[Any]:
    kept = []
    for item in items:
        if isinstance(item, dict):
            ((title, value),) = item.items()
            if isinstance(value, list):
                value = _prune(value, docs)
                if not value:
                    continue
            elif value in OPTIONAL and not (docs / value).is_file():
                continue
            kept.append({title: value})
        elif isinstance(item, str):
            if item in OPTIONAL and not (docs / item).is_file():
                continue
            kept.append(item)
    return kept


def _named(items: list[Any]) -> set[str]:
    found: set[str] = set()
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        found |= _named(value) if isinstance(value, list) else {value}
    return found


def on_config(config: Any, **kwargs: Any) -> Any:
    docs = Path(config["docs_dir"])
    nav = _prune(config["nav"], docs)
    named = _named(nav)
    for item in nav:
        if isinstance(item, dict) and "Results" in item:
            for page in sorted((docs / "results").glob("*.md")):
                path = f"results/{page.name}"
                if path not in named:
                    item["Results"].append(path)
    config["nav"] = nav
    return config
