"""LangChain's own conformance suite (langchain-tests) for AVPChatModel on tiny-qwen2.

Features the model lacks are declared through the suite's switches: no tool calling (so no
structured output), text input only. Everything else runs as the suite defines it.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import pytest

if os.environ.get("AVP_SUITE_FRAMEWORK") != "langgraph":  # its tox env must have it
    pytest.importorskip("langchain_tests")

from avp_langgraph import AVPChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from avp_core import HuggingFaceConnector


@cache
def _connector() -> HuggingFaceConnector:
    return HuggingFaceConnector.from_pretrained("tiny-qwen2")


class _Declared:
    """What AVPChatModel supports, in the suite's own terms."""

    @property
    def chat_model_class(self) -> type[AVPChatModel]:
        return AVPChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # Random weights never emit EOS: keep answers short so the suite stays fast.
        return {"connector": _connector(), "max_new_tokens": 8}

    @property
    def has_tool_calling(self) -> bool:
        return False  # bind_tools raises NotImplementedError (see docs/langgraph.md)

    @property
    def has_tool_choice(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False  # one connector, one model

    @property
    def returns_usage_metadata(self) -> bool:
        return True


class TestAVPChatModelUnit(_Declared, ChatModelUnitTests):
    pass


# The suite's async tests carry no asyncio marker (LangChain runs pytest-asyncio in auto mode);
# marking the class runs them here without a config change, and the plugin's note about the
# sync tests that also get the mark is silenced.
@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore:The test <Function:pytest.PytestWarning")
class TestAVPChatModelIntegration(_Declared, ChatModelIntegrationTests):
    pass
