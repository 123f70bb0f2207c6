"""The real PostgreSQL and Redis servers the store tests use (never mocked).

Set ``AVP_SUITE_POSTGRES`` / ``AVP_SUITE_REDIS`` to point elsewhere. Under ``CI=true`` (and
in the tox ``stores`` env) a server that is not running fails the test; elsewhere the test
skips, saying how to start it.
"""

from __future__ import annotations

import importlib
import os
import uuid
from typing import Any

import pytest

POSTGRES = os.environ.get("AVP_SUITE_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("AVP_SUITE_REDIS", "redis://127.0.0.1:6379/0")
_HOW = {
    "PostgreSQL": "start one with `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust "
    "-e POSTGRES_DB=test postgres:16` (or set AVP_SUITE_POSTGRES)",
    "Redis": "start one with `docker run -d -p 6379:6379 redis:7` (or set AVP_SUITE_REDIS)",
}


def _required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("AVP_SUITE_REQUIRE_SERVICES") == "1"


def _missing(service: str, url: str, reason: object) -> None:
    message = f"{service} is not reachable at {url} ({reason}); {_HOW[service]}"
    if _required():
        pytest.fail(message)
    pytest.skip(message)


def require(module: str, install: str) -> Any:
    """Import ``module``; where services are required (tox ``stores``), its absence fails
    the test instead of skipping it, so that env cannot pass having run nothing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"{module} is not installed: pip install {install}"
        if os.environ.get("AVP_SUITE_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message, allow_module_level=True)  # also at a module's top


def postgres_dsn() -> str:
    """The test server's DSN, after checking that it answers."""
    psycopg = require("psycopg", "'avp-suite[postgres]'")
    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except psycopg.Error as exc:
        _missing("PostgreSQL", POSTGRES, str(exc).strip().splitlines()[0])
    return POSTGRES


def redis_url() -> str:
    """The test server's URL, after checking that it answers."""
    redis = require("redis", "'avp-suite[redis]'")
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        _missing("Redis", REDIS, exc)
    return REDIS


def unique_name(prefix: str = "avp_test") -> str:
    """A table name or key prefix no other test run uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class RedisServer:
    """A private, real ``redis-server`` process on a free port, which a test can stop to
    see what an outage does (the shared server must stay up for other tests)."""

    def __init__(self) -> None:
        import shutil
        import socket
        import subprocess
        import time

        binary = shutil.which("redis-server")
        if binary is None:
            _missing("Redis", "redis-server on PATH", "not installed")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.stop()
                    _missing("Redis", self.url, "redis-server did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
