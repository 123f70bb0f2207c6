"""avp_core: the framework-free core of avp-suite.

Wire codec (:mod:`avp_core.wire`), model identity and handshake, contexts, the context
store and the Hugging Face connector. torch and transformers are imported only when a name
that needs them is first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    AVPError,
    ContextWindowError,
    DecodeError,
    EncodeError,
    IncompatibleContextError,
    InvalidRequestError,
    MissingDependencyError,
    ModelNotFoundError,
)
from .handshake import Handshake, Mode, resolve
from .identity import ModelIdentity


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("avp-suite")
    except metadata.PackageNotFoundError:  # imported from a source tree that is not installed
        return "0+unknown"


__version__ = _version()

_LAZY = {
    "AVPContext": "avp_core.context",
    "ContextStore": "avp_core.store",
    "HuggingFaceConnector": "avp_core.connectors.hf",
    "Generation": "avp_core.connectors.base",
    "GenerationOptions": "avp_core.connectors.base",
    "Usage": "avp_core.connectors.base",
    "Connector": "avp_core.connectors.base",
    "extract_model_identity": "avp_core.connectors.hf_identity",
}

if TYPE_CHECKING:
    from .connectors.base import Connector, Generation, GenerationOptions, Usage
    from .connectors.hf import HuggingFaceConnector
    from .connectors.hf_identity import extract_model_identity
    from .context import AVPContext
    from .store import ContextStore


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = import_module(_LAZY[name])
        except ImportError as exc:
            if exc.name in ("torch", "transformers", "numpy"):
                raise MissingDependencyError(exc.name, "hf") from exc
            raise
        return getattr(module, name)
    raise AttributeError(f"module 'avp_core' has no attribute {name!r}")


__all__ = [
    "AVPContext",
    "AVPError",
    "Connector",
    "ContextStore",
    "ContextWindowError",
    "DecodeError",
    "EncodeError",
    "Generation",
    "GenerationOptions",
    "Handshake",
    "HuggingFaceConnector",
    "IncompatibleContextError",
    "InvalidRequestError",
    "MissingDependencyError",
    "Mode",
    "ModelIdentity",
    "ModelNotFoundError",
    "Usage",
    "extract_model_identity",
    "resolve",
]
