"""HTTP binding: process reward models over vLLM's ``/pooling`` API, as client and server.

The client needs only httpx (which langchain-core installs; the ``server`` extra
pins it too); the server needs the ``server`` extra:
``pip install "langchain-adaptive[server]"``.

- :class:`RemotePRM`: a PRM served by vLLM (Qwen2.5-Math-PRM with STEP pooling)
  or by :func:`~.server.create_app`, with retries, timeouts and an API key (``remote.py``).
- :func:`create_app`, :func:`serve_prm`, :func:`running_server`: serve any
  ``ProcessRewardModel`` behind the same API, with request-size and batch limits,
  an optional API key and graceful shutdown (``server.py``; from a shell:
  ``langchain-adaptive serve-prm --prm hf|probe|judge``).

Names are imported lazily, so importing this package does not import fastapi.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_adaptive._lazy import lazy_exports

if TYPE_CHECKING:
    from ._remote import RemotePRM, RemotePRMError
    from ._server import create_app, running_server, serve_prm

__all__ = (
    "RemotePRM",
    "RemotePRMError",
    "create_app",
    "running_server",
    "serve_prm",
)

_MODULE_OF: dict[str, str] = {
    "RemotePRM": "_remote",
    "RemotePRMError": "_remote",
    "create_app": "_server",
    "running_server": "_server",
    "serve_prm": "_server",
}


__getattr__, __dir__ = lazy_exports(
    __name__, _MODULE_OF, __all__, install_hint='pip install "langchain-adaptive[server]"'
)
