"""The layering the import-linter contracts cannot see: imports by the installed name.

``integrations/`` ships as ``langchain_adaptive.integrations`` (a setuptools package-dir
mapping), which grimp, and so ``lint-imports``, cannot follow: the contracts in
``pyproject.toml`` check the integrations as the top-level package ``integrations``. An
import written ``from langchain_adaptive.integrations... import ...`` is invisible to them,
so this test pins who may write one: the command line and the harness (which choose the
bundled model), and an integration naming its own package. The runtime never does.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = "langchain_adaptive.integrations"
# The command-line layer and the harness: they choose a model or PRM by name.
CLI_AND_HARNESS = {
    "langchain_adaptive.cli",
    "langchain_adaptive._prm_factory",
    "langchain_adaptive._reasoner_flags",
    "langchain_adaptive._serve_openai",
    "langchain_adaptive._serve_prm",
}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for folder, package in (
        ("langchain_adaptive", "langchain_adaptive"),
        ("integrations", INSTALLED),
    ):
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found.append((".".join((package, *parts)), path))
    return found


def _installed_name_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [name for name in names if name == INSTALLED or name.startswith(INSTALLED + ".")]


def _allowed(module: str, imported: str) -> bool:
    if module in CLI_AND_HARNESS or module.startswith("langchain_adaptive.evaluation"):
        return True
    if module.startswith(INSTALLED + "."):  # an integration may name its own package
        own = ".".join(module.split(".")[:3])
        return imported == own or imported.startswith(own + ".")
    return False


def test_only_the_command_line_and_the_harness_import_an_integration_by_name() -> None:
    modules = _modules()
    assert any(name == "langchain_adaptive.runnable" for name, _ in modules)
    assert any(name == INSTALLED + ".llamacpp._chat_models" for name, _ in modules)
    wrong = [
        f"{module} imports {imported}"
        for module, path in modules
        for imported in _installed_name_imports(path)
        if not _allowed(module, imported)
    ]
    assert wrong == []


def test_the_check_sees_a_runtime_import_of_an_integration(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from langchain_adaptive.integrations.llamacpp import X\n")
    imported = _installed_name_imports(source)
    assert imported == ["langchain_adaptive.integrations.llamacpp"]
    assert not _allowed("langchain_adaptive.strategies._deepconf", imported[0])
    assert not _allowed(INSTALLED + ".http.openai_server", imported[0])


def test_every_package_module_is_placed_in_a_layer() -> None:
    """A new module must join the runtime contract or the CLI layer, or nothing checks it."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = config["tool"]["importlinter"]["contracts"][0]
    placed = [*contract["source_modules"], *contract["forbidden_modules"]]

    def is_placed(module: str) -> bool:
        return any(module == name or module.startswith(name + ".") for name in placed)

    unplaced = [
        module
        for module, _ in _modules()
        if not module.startswith(INSTALLED) and module != "langchain_adaptive"
        if not is_placed(module)
    ]
    assert unplaced == []
