"""Argument types for the command line: a bad number is a one-line usage error, not a traceback
from deep inside a benchmark."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def positive_ints(text: str) -> list[int]:
    """A comma-separated list of integers >= 1, such as ``2,4,8``."""
    values = [positive_int(part.strip()) for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError("give at least one positive integer, such as 2,4,8")
    return values


def ratio_list(text: str) -> list[float]:
    """A comma-separated list of ratios in [0, 1], such as ``0,0.15,0.3``."""
    try:
        ratios = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        ratios = [-1.0]
    if not ratios or any(not 0 <= r <= 1 for r in ratios):
        raise argparse.ArgumentTypeError(
            f"expected ratios in [0, 1] separated by commas, such as 0,0.15,0.3; got {text!r}"
        )
    return ratios


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
