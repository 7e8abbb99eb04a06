"""Fixtures that run a real ``kg-reward serve`` on 127.0.0.1.

- ``reward_server_url`` (session): one server with two workers, shared by every test
  that only sends requests. Yields the base URL, for example ``http://127.0.0.1:41234``;
  ``reward_server`` yields the same server as a ``RewardServer`` (for its log).
- ``reward_server_factory`` (function): ``start(*, workers=1, port=None, env=None)``
  returns a ``RewardServer`` with ``.url``, ``.stop()`` and ``.restart()`` (same port),
  for tests that need their own settings or kill the server. Every server it started is
  stopped at teardown.

Servers run ``python -m kg_reward.cli serve`` in their own process group, so stopping
one ends its uvicorn workers too. Their output goes to a log file (``.log_path``) that
failures quote. ``KG_REWARD_TEST_START_TIMEOUT`` (seconds, default 90) bounds the wait
for ``/readyz``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = float(os.environ.get("KG_REWARD_TEST_START_TIMEOUT", "90"))
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RewardServer:
    """One ``kg-reward serve`` subprocess bound to 127.0.0.1."""

    def __init__(self, *, workers: int, port: int, env: dict[str, str], log_path: Path) -> None:
        self.workers = workers
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RewardServer:
        command = [
            sys.executable, "-m", "kg_reward.cli", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, env=self._env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()
        return self

    def stop(self) -> None:
        """Send SIGTERM to the server's process group; SIGKILL it after 15 s."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> RewardServer:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"kg-reward serve exited with {self._process.returncode} before it was "
                    f"ready; its log ends with:\n{self.log_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"kg-reward serve on {self.url} was not ready after {START_TIMEOUT_S:.0f} s; its "
            f"log ends with:\n{self.log_text()[-3000:]}"
        )


def _server_env(extra: dict[str, str] | None) -> dict[str, str]:
    # Settings the outer environment may hold would change what the tests expect.
    env = {key: value for key, value in os.environ.items() if not key.startswith("KG_REWARD_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@pytest.fixture(scope="session")
def reward_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RewardServer]:
    """The shared two-worker server with default settings; do not stop or restart it."""
    log_path = tmp_path_factory.mktemp("reward_server") / "serve.log"
    server = RewardServer(workers=2, port=free_port(), env=_server_env(None), log_path=log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def reward_server_url(reward_server: RewardServer) -> str:
    """Base URL of the shared two-worker server."""
    return reward_server.url


@pytest.fixture
def reward_server_factory(tmp_path: Path) -> Iterator[Callable[..., RewardServer]]:
    """Factory of servers with their own settings; all are stopped at teardown."""
    servers: list[RewardServer] = []

    def start(
        *, workers: int = 1, port: int | None = None, env: dict[str, str] | None = None
    ) -> RewardServer:
        log_path = tmp_path / f"serve-{len(servers)}.log"
        server = RewardServer(
            workers=workers, port=port or free_port(), env=_server_env(env), log_path=log_path
        )
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
