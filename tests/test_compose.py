"""docker-compose.yml: validated by `docker-compose config`, and its commands run directly.

No Docker engine runs in CI, so the slow test starts what the containers would start: the
reward image's command on 127.0.0.1 and nginx with the load balancer's config rendered as
the nginx image would render it. Building the images and Docker's DNS round-robin over
scaled replicas are not exercised here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
REWARD_DOCKERFILE = ROOT / "services" / "kg_reward" / "Dockerfile"
NGINX_TEMPLATE = ROOT / "services" / "kg_reward" / "deploy" / "nginx.conf.template"
STARTUP_TIMEOUT_S = 180

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)
needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as `docker-compose config` resolves it, with default variables."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("KG_REWARD_", "DEMO_SCALE"))}
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config"],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _dockerfile_cmd(path: Path) -> list[str]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("CMD ")]
    return list(json.loads(lines[-1][len("CMD "):]))


def render_nginx_template(values: dict[str, str]) -> str:
    """Substitute ${NAME} for the given names only, as the nginx image's envsubst does."""
    return re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)),
                  NGINX_TEMPLATE.read_text())


def nginx_main_config(folder: Path, include: Path) -> Path:
    """Write a main nginx.conf that keeps every file nginx writes inside ``folder``."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    path = folder / "nginx.conf"
    path.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'} info;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n    access_log off;\n{temp}\n    include {include};\n}}\n"
    )
    return path


# --- the compose file ---------------------------------------------------------------


@needs_compose
def test_compose_defines_three_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kg_reward", "reward-lb", "trainer"}


@needs_compose
def test_compose_reward_healthcheck_requests_healthz(compose: dict[str, Any]) -> None:
    test = compose["services"]["kg_reward"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert "/healthz" in " ".join(test)


@needs_compose
def test_compose_reward_service_publishes_no_host_port(compose: dict[str, Any]) -> None:
    # A fixed host port would make `docker compose up --scale kg_reward=N` fail for N > 1.
    service = compose["services"]["kg_reward"]
    assert "ports" not in service
    assert "container_name" not in service


@needs_compose
def test_compose_trainer_waits_for_healthy_services(compose: dict[str, Any]) -> None:
    depends_on = compose["services"]["trainer"]["depends_on"]
    assert depends_on["kg_reward"]["condition"] == "service_healthy"
    assert depends_on["reward-lb"]["condition"] == "service_healthy"


@needs_compose
def test_compose_balancer_waits_for_healthy_service(compose: dict[str, Any]) -> None:
    balancer = compose["services"]["reward-lb"]
    assert balancer["depends_on"]["kg_reward"]["condition"] == "service_healthy"
    assert balancer["environment"]["KG_REWARD_UPSTREAM"] == "kg_reward:8000"


@needs_compose
def test_compose_trainer_command_targets_balancer(compose: dict[str, Any]) -> None:
    from policy_trainer.cli import build_parser

    command = compose["services"]["trainer"]["command"]
    assert command[0] == "policy-trainer"
    args = build_parser().parse_args(command[1:])
    assert args.command == "demo"
    assert args.reward_url == "http://reward-lb:8080"


@needs_compose
def test_compose_trainer_keeps_runs_in_named_volumes(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["trainer"]["volumes"]
    sources = {str(volume).split(":")[0] for volume in volumes}
    assert {"kg_runs", "kg_cache"} <= sources
    assert {"kg_runs", "kg_cache"} <= set(compose["volumes"])


def test_reward_dockerfile_installs_no_train_extra() -> None:
    run_lines = [line for line in REWARD_DOCKERFILE.read_text().splitlines()
                 if line.startswith("RUN ")]
    installs = [line for line in run_lines if "pip install" in line]
    assert installs == ["RUN pip install . \\"]


# --- the load balancer config -------------------------------------------------------


@needs_nginx
def test_nginx_template_passes_config_test(tmp_path: Path) -> None:
    rendered = tmp_path / "default.conf"
    rendered.write_text(render_nginx_template({
        "NGINX_PORT": "127.0.0.1:8080", "NGINX_RESOLVER": "127.0.0.11",
        "KG_REWARD_UPSTREAM": "kg_reward:8000",
    }))
    config = nginx_main_config(tmp_path, rendered)
    result = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_nginx_template_substitutes_only_its_variables() -> None:
    rendered = render_nginx_template({
        "NGINX_PORT": "8080", "NGINX_RESOLVER": "127.0.0.11",
        "KG_REWARD_UPSTREAM": "kg_reward:8000",
    })
    assert "${" not in rendered
    assert "proxy_pass $kg_reward_upstream;" in rendered
    assert "resolver 127.0.0.11" in rendered


# --- the containers' commands, started directly ------------------------------------


@pytest.fixture()
def reward_container_command(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The reward image's CMD on 127.0.0.1 with one worker; yields (url, process)."""
    port = _free_port()
    command = [part.replace("0.0.0.0", "127.0.0.1") for part in
               _dockerfile_cmd(REWARD_DOCKERFILE)]
    env = {**os.environ, "KG_REWARD_PORT": str(port), "KG_REWARD_WORKERS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = (tmp_path / "kg_reward.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        _stop(process)
        log.close()


@pytest.fixture()
def balancer(tmp_path: Path, reward_container_command: tuple[str, subprocess.Popen[bytes]]
             ) -> Iterator[str]:
    """nginx on 127.0.0.1 with the load balancer's config in front of the reward command."""
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    upstream = reward_container_command[0].removeprefix("http://")
    port = _free_port()
    folder = tmp_path / "nginx"
    folder.mkdir()
    rendered = folder / "default.conf"
    # An address literal in proxy_pass needs no DNS lookup; the resolver line stays valid.
    rendered.write_text(render_nginx_template({
        "NGINX_PORT": f"127.0.0.1:{port}", "NGINX_RESOLVER": "127.0.0.1",
        "KG_REWARD_UPSTREAM": upstream,
    }))
    config = nginx_main_config(folder, rendered)
    process = subprocess.Popen(["nginx", "-p", str(folder), "-c", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the reward command exited during start-up"
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url}/readyz did not return 200 within {STARTUP_TIMEOUT_S} s")


@pytest.mark.slow
@needs_compose
def test_compose_healthcheck_passes_against_reward_command(
    compose: dict[str, Any], reward_container_command: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, process = reward_container_command
    _wait_ready(url, process)
    test = compose["services"]["kg_reward"]["healthcheck"]["test"]
    command = [sys.executable if part == "python" else part for part in test[1:]]
    env = {**os.environ, "KG_REWARD_PORT": url.rsplit(":", 1)[1]}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
@needs_nginx
def test_balancer_forwards_score_to_reward_command(
    balancer: str, reward_container_command: tuple[str, subprocess.Popen[bytes]]
) -> None:
    _wait_ready(*reward_container_command)
    body = {"items": [{
        "completion": "<think>Small left pleural effusion.</think><answer>yes</answer>",
        "reference": "Small left pleural effusion.", "reference_answer": "yes",
    }]}
    response = httpx.post(f"{balancer}/score", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert len(response.json()["rewards"]) == 1
    assert httpx.get(f"{balancer}/healthz", timeout=10).status_code == 200
