"""Mount the top-level ``integrations/`` folder as ``langchain_adaptive.integrations``.

The package ships ``integrations/`` under that name through setuptools' ``package-dir``;
griffe reads the source tree, so the API reference needs to be told where it lives.
"""

from __future__ import annotations

from typing import Any

import griffe


class MountIntegrations(griffe.Extension):
    """After ``langchain_adaptive`` is loaded, load ``integrations`` as its subpackage."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "langchain_adaptive" or "integrations" in pkg.members:
            return
        pkg.set_member("integrations", loader.load("integrations", try_relative_path=False))
