"""The shared ``ask``/``serve`` flags offer only strategies a flag can build."""

from __future__ import annotations

import pytest

from langchain_adaptive._reasoner_flags import STRATEGY_CHOICES
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.strategies import STRATEGIES, build_strategy

# Built from a flag too, but with its fitted rule (``--stop-model``).
NEEDS_A_FLAG = {"answer_stop"}


@pytest.mark.parametrize("name", STRATEGY_CHOICES)
def test_every_offered_strategy_builds_from_its_name(name: str) -> None:
    if name in NEEDS_A_FLAG:
        with pytest.raises(ConfigurationError):
            build_strategy(name)
    else:
        assert build_strategy(name).name


@pytest.mark.parametrize("name", sorted(set(STRATEGIES) - set(STRATEGY_CHOICES)))
def test_what_is_left_out_needs_an_object_no_flag_gives(name: str) -> None:
    with pytest.raises(ConfigurationError):
        build_strategy(name)
