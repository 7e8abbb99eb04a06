"""Rewording by a chat model: a real HTTP server on 127.0.0.1 speaking the OpenAI wire format.

The server answers requests in a fixed cycle: a faithful rewrite (in a ```json fence), a
rewrite that flips the answer, a rewrite whose rationale adds a finding the report does
not state, and, for the fifth request only, an HTTP 500. Synthesis must keep only the
faithful rewrites.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from policy_trainer.synthesis.config import SynthesizeConfig
from policy_trainer.synthesis.dataset import SPLITS
from policy_trainer.synthesis.pipeline import synthesize

SAMPLE_CSV = Path(__file__).parent / "data" / "iu_reports_sample.csv"
INVENTED = "A large hiatal hernia is present."
FAITHFUL_PREFIX = "Looking at this radiograph,"


class ChatStub(BaseHTTPRequestHandler):
    """POST /v1/chat/completions with replies chosen by request number."""

    requests: list[dict[str, Any]] = []
    modes: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's method name)
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        number = len(ChatStub.requests)
        ChatStub.requests.append({"body": body, "authorization": self.headers["Authorization"]})
        mode = "error" if number == 4 else ("faithful", "flipped", "invented")[number % 3]
        ChatStub.modes.append(mode)
        if mode == "error":
            self.send_error(500)
            return
        content = reply_for(mode, body["messages"][-1]["content"])
        payload = json.dumps({
            "id": f"chat-{number}", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


def reply_for(mode: str, request: str) -> str:
    fields = dict(
        line.split(": ", 1) for line in request.splitlines() if ": " in line
    )
    question = fields["Draft question"]
    answer = fields["Answer (keep exactly)"]
    rationale = fields["Report sentences about the finding"]
    if mode == "flipped":
        answer = {"yes": "no", "no": "yes"}.get(answer, "the opposite")
    if mode == "invented":
        rationale = f"{rationale} {INVENTED}"
    reply = json.dumps({
        "question": f"{FAITHFUL_PREFIX} {question[0].lower()}{question[1:]}",
        "rationale": rationale, "answer": answer,
    })
    return f"```json\n{reply}\n```" if mode == "faithful" else reply


@pytest.fixture(scope="module")
def chat_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def llm_run(
    chat_server: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    import kg_reward

    output_dir = tmp_path_factory.mktemp("llm")
    ChatStub.requests.clear()
    ChatStub.modes.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STUB_API_KEY", "test-key")
        config = SynthesizeConfig(
            source="csv", input_path=SAMPLE_CSV, output_dir=output_dir, max_reports=8,
            balance_answers=False, llm_base_url=chat_server, llm_model="stub-4o",
            llm_api_key_env="STUB_API_KEY", llm_timeout_s=10, llm_max_items=12,
        )
        summary = synthesize(config, extractor=kg_reward.load())
    lines = [
        line for split in SPLITS
        for line in (output_dir / f"{split}.jsonl").read_text().splitlines()
    ]
    return summary, [json.loads(line) for line in lines]


def test_llm_requests_carry_model_and_key(llm_run: Any) -> None:
    assert len(ChatStub.requests) == 12
    for request in ChatStub.requests:
        assert request["body"]["model"] == "stub-4o"
        assert request["authorization"] == "Bearer test-key"


def test_llm_keeps_only_faithful_rewrites(llm_run: Any) -> None:
    summary, items = llm_run
    reworded = [item for item in items if item["source"] == "llm"]

    assert len(reworded) == ChatStub.modes.count("faithful")
    assert summary["llm"]["accepted"] == len(reworded)
    assert all(item["question"].startswith(FAITHFUL_PREFIX) for item in reworded)


def test_llm_rejects_flipped_answers(llm_run: Any) -> None:
    summary, _ = llm_run

    assert summary["llm"]["rejected: answer contradicts the report graph"] == \
        ChatStub.modes.count("flipped")


def test_llm_rejects_invented_findings(llm_run: Any) -> None:
    summary, items = llm_run

    assert summary["llm"]["rejected: rationale not grounded"] == ChatStub.modes.count("invented")
    assert not any(INVENTED in item["rationale"] for item in items)


def test_llm_failed_request_keeps_template_item(llm_run: Any) -> None:
    summary, items = llm_run

    assert summary["llm"]["failed_request"] == 1
    assert summary["llm"]["sent"] == 12
    assert sum(item["source"] == "template" for item in items) == len(items) - \
        summary["llm"]["accepted"]
