"""The real ``kg-reward serve`` with two workers on 127.0.0.1 (fixtures in tests/conftest.py)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytestmark = pytest.mark.slow

REFERENCE = "<think>Small left pleural effusion. No pneumothorax.</think><answer>yes</answer>"
GOOD = (
    "<think>There is a small left pleural effusion and no pneumothorax.</think><answer>yes</answer>"
)
BAD = "<think>Cardiomegaly. The lungs are clear.</think><answer>no</answer>"


def score_items(count: int) -> list[dict[str, str]]:
    return [
        {"id": f"i{n}", "completion": GOOD if n % 2 == 0 else BAD, "reference": REFERENCE}
        for n in range(count)
    ]


def test_live_score_in_item_order(reward_server_url):
    response = httpx.post(f"{reward_server_url}/score", json={"items": score_items(8)}, timeout=30)

    assert response.status_code == 200
    rewards = response.json()["rewards"]
    assert len(rewards) == 8
    assert all(rewards[n] > rewards[n + 1] for n in range(0, 8, 2))


def test_live_requests_reach_both_workers(reward_server):
    # Which worker accepts a connection is up to the kernel, so allow up to three rounds.
    line = re.compile(r"\[(\d+)\] kg_reward\.service\.middleware: \S+ method=POST")
    pids: set[str] = set()
    for _ in range(3):
        post_concurrently(reward_server.url, requests=24, items=2)
        pids = set(line.findall(reward_server.log_text()))
        if len(pids) == 2:
            break

    assert len(pids) == 2


def test_live_extract(reward_server_url):
    body = {"texts": ["Small left pleural effusion.", "No pneumothorax."]}
    response = httpx.post(f"{reward_server_url}/extract", json=body, timeout=30)

    assert response.status_code == 200
    graphs = response.json()["graphs"]
    assert len(graphs) == 2
    assert graphs[1]["entities"][0]["label"] == "disorder_notpresent"


def test_live_openrlhf_reward(reward_server_url):
    prompt = "<|im_start|>user\nIs there an effusion?<|im_end|>\n<|im_start|>assistant\n"
    body = {
        "query": [prompt + GOOD + "<|im_end|>", prompt + BAD + "<|im_end|>"],
        "prompts": [prompt, prompt],
        "labels": [REFERENCE, REFERENCE],
    }
    response = httpx.post(f"{reward_server_url}/openrlhf/reward", json=body, timeout=30)

    assert response.status_code == 200
    data = response.json()
    assert data["rewards"][0] > data["rewards"][1]
    assert data["extra_logs"]["answer"] == [1.0, 0.0]


def test_live_probes(reward_server_url):
    assert httpx.get(f"{reward_server_url}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{reward_server_url}/readyz", timeout=5).status_code == 200
    assert httpx.get(f"{reward_server_url}/docs", timeout=5).status_code == 200


def test_live_metrics_sum_workers(reward_server_url):
    name = 'kg_reward_items_total{route="/score"}'
    before = _sample(httpx.get(f"{reward_server_url}/metrics", timeout=10).text, name)
    post_concurrently(reward_server_url, requests=16, items=3)
    after = [
        _sample(httpx.get(f"{reward_server_url}/metrics", timeout=10).text, name) for _ in range(6)
    ]

    # The requests went to both workers, and scrapes on new connections reach either one;
    # every scrape must count the items of both.
    assert [total - before for total in after] == [48] * 6


def test_live_bad_input_status_codes(reward_server_url):
    with httpx.Client(base_url=reward_server_url, timeout=30) as client:
        missing = client.post("/score", json={"items": [{"reference": "x"}]})
        nan = client.post(
            "/score",
            content=b'{"items": [], "weights": {"answer": NaN}}',
            headers={"Content-Type": "application/json"},
        )
        too_long = client.post(
            "/score", json={"items": [{"completion": "a" * 100_001, "reference": "b"}]}
        )

    assert missing.status_code == 422
    assert "items[0].completion" in missing.json()["message"]
    assert nan.status_code == 422
    assert too_long.status_code == 413


def test_live_token_required(reward_server_factory):
    server = reward_server_factory(env={"KG_REWARD_API_TOKEN": "s3cret"})
    body = {"items": score_items(1)}

    assert httpx.post(f"{server.url}/score", json=body, timeout=30).status_code == 401
    authorized = httpx.post(
        f"{server.url}/score", json=body, headers={"Authorization": "Bearer s3cret"}, timeout=30
    )
    assert authorized.status_code == 200
    assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200


def test_live_restart_and_stop(reward_server_factory):
    server = reward_server_factory()
    url = server.url
    server.restart()

    assert server.url == url
    assert httpx.post(f"{url}/score", json={"items": score_items(1)}, timeout=30).status_code == 200
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_live_request_id_in_log(reward_server):
    httpx.post(
        f"{reward_server.url}/score",
        json={"items": score_items(2)},
        headers={"X-Request-ID": "live-42"},
        timeout=30,
    )
    pattern = r"request_id=live-42 method=POST route=/score status=200 batch=2 duration_ms="

    # The worker writes the line after it sends the response; give it a moment.
    deadline = time.monotonic() + 5
    while not re.search(pattern, reward_server.log_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert re.search(pattern, reward_server.log_text())


def post_concurrently(url: str, *, requests: int, items: int) -> None:
    """POST /score from 8 threads, each request on a new connection, so both workers serve some."""

    def post(_: int) -> int:
        return httpx.post(
            f"{url}/score", json={"items": score_items(items)}, timeout=30
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(post, range(requests))) == {200}


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
