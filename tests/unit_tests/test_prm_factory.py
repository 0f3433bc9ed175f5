"""make_prm: one name means one PRM in every command (serve-prm, bench, calibrate, ask).

Building a PRM loads nothing (llama.cpp and transformers load on the first score),
so these run the real classes without a model file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from langchain_adaptive._prm_factory import PRM_NAMES, make_prm
from langchain_adaptive.errors import ConfigurationError, ModelNotFoundError
from langchain_adaptive.inputs import FewShotExample


def test_an_unknown_name_lists_the_names() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown PRM 'oracle'.*'hf'"):
        make_prm("oracle")
    assert set(PRM_NAMES) == {"auto", "probe", "judge", "confidence", "hf"}


def test_hf_needs_a_model_and_goes_to_hugging_face(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="needs a model"):
        make_prm("hf")
    pytest.importorskip("transformers", reason='needs the "hf" extra')
    with pytest.raises(ModelNotFoundError, match="neither"):  # from_pretrained's own check
        make_prm("hf", model=str(tmp_path / "missing"), local_files_only=True)


def test_the_on_device_names_build_the_llamacpp_prms() -> None:
    pytest.importorskip("llama_cpp", reason='needs the "llamacpp" extra')
    from langchain_adaptive.integrations.llamacpp import (
        ChatLlamaCpp,
        ProbePRM,
        TokenConfidencePRM,
    )
    from langchain_adaptive.integrations.llamacpp._probe import BUNDLED_HEAD
    from langchain_adaptive.prm._judge import LLMJudgePRM

    chat = ChatLlamaCpp(n_threads=1)
    probe = make_prm("probe", n_threads=1, n_gpu_layers=0)
    assert isinstance(probe, ProbePRM) and probe.model is None and probe.n_threads == 1
    judge = make_prm("judge", chat=chat)
    assert isinstance(judge, LLMJudgePRM) and judge.model is chat
    own = make_prm("judge", n_ctx=1024)
    assert isinstance(own.model, ChatLlamaCpp) and own.model.n_ctx == 1024
    example = FewShotExample(question="What is 1 + 1?", solution="1 + 1 = 2.", answer="2")
    confidence = make_prm("confidence", chat=chat, examples=[example])
    assert isinstance(confidence, TokenConfidencePRM) and confidence.policy is chat
    assert confidence.examples == [example]
    bundled = (BUNDLED_HEAD / "probe.json").is_file()
    assert isinstance(make_prm("auto"), ProbePRM if bundled else LLMJudgePRM)
    assert isinstance(make_prm("auto", model="other.gguf"), LLMJudgePRM)


def test_the_bundled_probe_head_refuses_another_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason='needs the "llamacpp" extra')
    from langchain_adaptive.integrations.llamacpp import ProbePRM

    with pytest.raises(ConfigurationError, match="fit-probe"):
        make_prm("probe", model="other.gguf")
    fitted = make_prm("probe", model="other.gguf", head=str(tmp_path))
    assert isinstance(fitted, ProbePRM) and fitted.head_path == str(tmp_path)


def test_choosing_by_name_loads_no_integration_until_called() -> None:
    """The factory module itself imports neither integration: only make_prm's call does."""
    import subprocess

    code = (
        "import sys, langchain_adaptive._prm_factory, langchain_adaptive._serve_prm\n"
        "loaded = [m for m in sys.modules if m.startswith("
        "('langchain_adaptive.integrations.llamacpp', 'langchain_adaptive.integrations."
        "huggingface'))]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
