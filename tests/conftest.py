"""Shared fixtures: connectors on the built-in offline models (built once per session)."""

from __future__ import annotations

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
