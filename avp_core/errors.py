"""Typed errors: every failure avp-suite raises on purpose is an :class:`AVPError`."""

from __future__ import annotations


class AVPError(Exception):
    """Base class of every error avp-suite raises on purpose."""


class DecodeError(AVPError, ValueError):
    """Bytes are not a valid AVP message (truncated, inconsistent, corrupt or too large)."""


class AuthenticationError(DecodeError):
    """A message is unsigned, or its signature does not match, where a key requires one."""


class EncodeError(AVPError, ValueError):
    """Something cannot be encoded as an AVP message (unsupported dtype, ragged shapes...)."""


class IncompatibleContextError(AVPError):
    """A context cannot be used here: the models differ and there is no text to fall back on."""


class ModelNotFoundError(AVPError, ValueError):
    """A model name or path does not name a built-in model or a loadable checkpoint."""


class MissingDependencyError(AVPError, ImportError):
    """An optional dependency (torch, transformers, zstandard...) is needed but not installed."""

    def __init__(self, package: str, extra: str | None = None) -> None:
        target = f"'avp-suite[{extra}]'" if extra else "avp-suite (a base dependency)"
        super().__init__(
            f"{package} is needed for this feature but is not installed; "
            f"install it with: pip install {target}"
        )
        self.package = package
        self.extra = extra


class InvalidRequestError(AVPError, ValueError):
    """A call's arguments cannot be used (empty messages, unknown layout, bad sampling values)."""


class ContextWindowError(InvalidRequestError):
    """A prompt (with the context it continues) has more positions than the model attends to."""


class StoreError(AVPError):
    """A context store cannot do what was asked (the base of the store errors below)."""


class StoreUnavailableError(StoreError):
    """A store's backend cannot be reached or did not answer in time (server down, timeout)."""


class ContextNotFoundError(StoreError, KeyError):
    """A reference names a context whose bytes the store no longer holds (evicted, expired,
    collected, or written to another store)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
