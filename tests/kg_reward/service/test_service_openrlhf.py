"""POST /openrlhf/reward: OpenRLHF's remote reward-model protocol."""

from __future__ import annotations

import json

import pytest

from kg_reward.service.routes.openrlhf import response_text, strip_special_tokens

CHATML_PROMPT = (
    "<|im_start|>system\nAnswer with <think></think><answer></answer>.<|im_end|>\n"
    "<|im_start|>user\nIs there a pleural effusion?<|im_end|>\n<|im_start|>assistant\n"
)


def chatml_query(response: str) -> str:
    return f"{CHATML_PROMPT}{response}<|im_end|><|endoftext|>"


def test_response_text_strips_prompt_and_special_tokens():
    response = "<think>Small effusion.</think><answer>yes</answer>"

    assert response_text(chatml_query(response), CHATML_PROMPT) == response


def test_response_text_finds_prompt_after_bos():
    query = "<|begin_of_text|>" + CHATML_PROMPT + "<think>a</think><answer>b</answer>"

    assert response_text(query, CHATML_PROMPT) == "<think>a</think><answer>b</answer>"


def test_response_text_without_prompt_keeps_query():
    assert response_text("<s>answer</s>", None) == "answer"


def test_response_text_prompt_not_found_keeps_query(caplog):
    assert response_text("<think>a</think>", "unrelated prompt") == "<think>a</think>"
    assert "prompt not found" in caplog.text


@pytest.mark.parametrize(
    "token",
    ["<|eot_id|>", "<|end|>", "</s>", "<pad>", "<end_of_turn>", "[PAD]", "<｜end▁of▁sentence｜>"],
)
def test_strip_special_tokens_removes_token(token):
    assert strip_special_tokens(f"<answer>yes</answer>{token}") == "<answer>yes</answer>"


def test_strip_special_tokens_keeps_reasoning_tags():
    text = "<think>a</think><answer>b</answer>"

    assert strip_special_tokens(text) == text


def openrlhf_body(samples, labels):
    responses = [samples["good"], samples["bad"]]
    return {
        "query": [chatml_query(response) for response in responses],
        "prompts": [CHATML_PROMPT, CHATML_PROMPT],
        "labels": labels,
    }


def test_openrlhf_reward_plain_labels(client, samples):
    body = openrlhf_body(samples, [samples["reference"], samples["reference"]])
    reply = client.post("/openrlhf/reward", json=body)

    assert reply.status_code == 200
    data = reply.json()
    assert data["rewards"][0] > data["rewards"][1]
    assert data["scores"] == [pytest.approx(reward / 2.0) for reward in data["rewards"]]
    assert set(data["extra_logs"]) == {"answer", "entity", "relation", "format"}
    assert data["extra_logs"]["answer"] == [1.0, 0.0]
    assert data["extra_logs"]["format"] == [1.0, 1.0]


def test_openrlhf_reward_matches_score_route(client, samples, item):
    body = openrlhf_body(samples, [samples["reference"], samples["reference"]])
    openrlhf = client.post("/openrlhf/reward", json=body).json()
    items = [item(samples["good"]), item(samples["bad"])]
    scored = client.post("/score", json={"items": items}).json()

    assert openrlhf["rewards"] == scored["rewards"]


def test_openrlhf_reward_json_labels(client, samples):
    untagged = "Small left pleural effusion. No pneumothorax."
    labels = [
        json.dumps({"reference": untagged, "reference_answer": "yes"}),
        {"reference": untagged, "reference_answer": "no"},
    ]
    data = client.post("/openrlhf/reward", json=openrlhf_body(samples, labels)).json()

    assert data["extra_logs"]["answer"] == [1.0, 1.0]


def test_openrlhf_reward_missing_answer_logged_as_zero(client, samples):
    labels = ["Small left pleural effusion.", "Small left pleural effusion."]
    data = client.post("/openrlhf/reward", json=openrlhf_body(samples, labels)).json()

    assert data["extra_logs"]["answer"] == [0.0, 0.0]


def test_openrlhf_reward_ignores_extra_fields(client, samples):
    body = openrlhf_body(samples, [samples["reference"]] * 2)
    body["datasources"] = ["mimic", "mimic"]

    assert client.post("/openrlhf/reward", json=body).status_code == 200


def test_openrlhf_reward_empty_batch(client):
    data = client.post("/openrlhf/reward", json={"query": [], "prompts": [], "labels": []}).json()

    assert data == {
        "rewards": [],
        "scores": [],
        "extra_logs": {"answer": [], "entity": [], "relation": [], "format": []},
    }


def test_openrlhf_reward_mismatched_labels_rejected(client, samples):
    body = openrlhf_body(samples, [samples["reference"]])
    reply = client.post("/openrlhf/reward", json=body)

    assert reply.status_code == 422
    assert "labels has 1 entries but query has 2" in reply.json()["message"]


def test_openrlhf_reward_mismatched_prompts_rejected(client, samples):
    body = openrlhf_body(samples, [samples["reference"]] * 2)
    body["prompts"] = body["prompts"][:1]
    reply = client.post("/openrlhf/reward", json=body)

    assert reply.status_code == 422
    assert "prompts has 1 entries but query has 2" in reply.json()["message"]


def test_openrlhf_reward_missing_labels_rejected(client):
    reply = client.post("/openrlhf/reward", json={"query": ["x"]})

    assert reply.status_code == 422
    assert "labels: Field required" in reply.json()["message"]


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        (None, "labels[1]: is empty"),
        ("  ", "labels[1]: is empty"),
        ("{not json", "labels[1]: starts with '{' but is not valid JSON"),
        ({"reference_answer": "yes"}, "labels[1]: needs a non-empty string under 'reference'"),
        ({"reference": "x", "answer": "yes"}, "labels[1]: has unknown keys ['answer']"),
        ({"reference": "x", "reference_answer": 1}, "labels[1]: has a 'reference_answer'"),
    ],
)
def test_openrlhf_reward_bad_label_names_position(client, samples, label, problem):
    body = openrlhf_body(samples, [samples["reference"], label])
    reply = client.post("/openrlhf/reward", json=body)

    assert reply.status_code == 422
    assert problem in reply.json()["message"]


def test_openrlhf_reward_batch_limit_returns_413(make_client, samples):
    client = make_client(max_batch_items=1)
    body = openrlhf_body(samples, [samples["reference"]] * 2)
    reply = client.post("/openrlhf/reward", json=body)

    assert reply.status_code == 413
    assert "query has 2 entries" in reply.json()["detail"]


def test_openrlhf_reward_plain_label_perfect_scores_one(client):
    rationale = "There is a small left pleural effusion."
    body = {"query": [f"<think>{rationale}</think><answer>yes</answer>"], "labels": [rationale]}
    reply = client.post("/openrlhf/reward", json=body).json()

    # No reference answer, so the answer weight stays out of the divisor.
    assert reply["scores"] == [pytest.approx(1.0)]


def test_openrlhf_reward_lone_surrogate_in_query_names_query(client, samples):
    body = json.dumps({"query": ["x"], "labels": [samples["reference"]]})
    body = body.replace('"x"', '"\\ud800 effusion"')
    reply = client.post(
        "/openrlhf/reward", content=body, headers={"Content-Type": "application/json"}
    )

    assert reply.status_code == 422
    assert reply.json()["message"].startswith("query[0]: contains a lone UTF-16 surrogate")


def test_openrlhf_reward_lone_surrogate_in_label_names_label(client):
    body = '{"query": ["<think>Effusion.</think>"], "labels": ["\\ud800 effusion"]}'
    reply = client.post(
        "/openrlhf/reward", content=body, headers={"Content-Type": "application/json"}
    )

    assert reply.status_code == 422
    assert reply.json()["message"].startswith("labels[0]: reference contains a lone UTF-16")


def test_openrlhf_reward_non_text_label_named_once(client, samples):
    body = openrlhf_body(samples, [samples["reference"], 3])
    message = client.post("/openrlhf/reward", json=body).json()["message"]

    assert message == "labels[1]: must be a string or an object with 'reference', got int"


def test_openrlhf_reward_long_response_names_query(make_client, samples):
    client = make_client(max_text_chars=len(samples["reference"]))
    body = {"query": [samples["reference"] + " More text."], "labels": [samples["reference"]]}
    reply = client.post("/openrlhf/reward", json=body)

    assert reply.status_code == 413
    assert reply.json()["detail"].startswith("query[0] (response part) has")
