"""The lazy-import helper behind every package ``__init__``: names load on first use, once."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_adaptive._lazy import lazy_exports

HINT = 'pip install "langchain-adaptive[demo]"'


@pytest.fixture
def package(tmp_path: Path) -> Iterator[str]:
    """A real package on disk: one light submodule and one that needs a missing library."""
    root = tmp_path / "lazy_demo_pkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        "from langchain_adaptive._lazy import lazy_exports\n"
        "_MODULE_OF = {'light': 'light', 'heavy': 'heavy'}\n"
        "__all__ = ('heavy', 'light')\n"
        "__getattr__, __dir__ = lazy_exports(\n"
        f"    __name__, _MODULE_OF, __all__, install_hint={HINT!r}\n"
        ")\n"
    )
    (root / "light.py").write_text("light = object()\n")
    (root / "heavy.py").write_text("import lazy_demo_no_such_library\nheavy = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield "lazy_demo_pkg"
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.split(".")[0] == "lazy_demo_pkg"]:
            del sys.modules[name]


def test_a_name_loads_its_submodule_on_first_use_and_is_then_cached(package: str) -> None:
    module = importlib.import_module(package)
    assert f"{package}.light" not in sys.modules
    value = module.light
    assert f"{package}.light" in sys.modules and module.__dict__["light"] is value
    assert module.light is value
    assert dir(module) == ["heavy", "light"]


def test_an_unknown_name_is_an_attribute_error(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        module.missing  # noqa: B018
    assert not hasattr(module, "missing")


def test_a_missing_library_names_the_extra_to_install(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(ImportError, match=r"heavy needs 'lazy_demo_no_such_library'.*\[demo\]"):
        module.heavy  # noqa: B018


def test_without_a_hint_the_original_error_passes_through() -> None:
    getattr_, _ = lazy_exports("json", {"nothing": "no_such_submodule"}, ())
    with pytest.raises(ModuleNotFoundError, match=r"json\.no_such_submodule"):
        getattr_("nothing")


def test_every_package_exports_what_its_all_lists() -> None:
    for name in (
        "langchain_adaptive.callbacks",
        "langchain_adaptive.calibration",
        "langchain_adaptive.integrations.http",
    ):
        package = importlib.import_module(name)
        assert dir(package) == sorted(package.__all__)
        for exported in package.__all__:
            assert getattr(package, exported) is not None
