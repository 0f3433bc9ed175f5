"""The lazy-import helper every package ``__init__`` uses, so importing a package stays cheap.

A package lists ``{name: submodule}`` and gets back the module ``__getattr__`` and
``__dir__`` of PEP 562: a name's submodule is imported on first use and the value
is cached on the package, so the next lookup is a plain attribute read. An
integration whose third-party library is missing fails on that first use with an
``ImportError`` that says which extra to install.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str,
    module_of: Mapping[str, str],
    exported: Sequence[str],
    *,
    install_hint: str | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__``, resolving ``module_of``'s names lazily.

    Args:
        package: The package's ``__name__``.
        module_of: Exported name -> the submodule (relative to ``package``) defining it.
            Read at each lookup, so the package may keep it as a plain dict literal.
        exported: What ``dir(package)`` lists (the package's ``__all__``).
        install_hint: How to install what the submodules need (for example
            ``'pip install "langchain-adaptive[llamacpp]"'``); added to the error when
            a submodule imports a third-party module that is not installed.

    Returns:
        ``(__getattr__, __dir__)``, to assign at the package's module level.

    Example:
        ```python
        _MODULE_OF = {"ChatLlamaCpp": "chat_models"}
        __all__ = ("ChatLlamaCpp",)
        __getattr__, __dir__ = lazy_exports(__name__, _MODULE_OF, __all__)
        ```
    """

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            value = getattr(import_module(f"{package}.{module}"), name)
        except ModuleNotFoundError as error:
            missing = error.name or ""
            if install_hint is None or missing.split(".")[0] == package.split(".")[0]:
                raise
            raise ImportError(
                f"{package}.{name} needs {missing!r}, which is not installed: {install_hint}",
                name=missing,
            ) from error
        setattr(sys.modules[package], name, value)  # cached: __getattr__ runs once a name
        return value

    def __dir__() -> list[str]:
        return list(exported)

    return __getattr__, __dir__


__all__ = ["lazy_exports"]
