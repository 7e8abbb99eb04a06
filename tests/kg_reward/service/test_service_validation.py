"""Bad input: 422 naming the field, 413 past the limits, 401 without the token."""

from __future__ import annotations

import pytest


def post_raw(client, path: str, text: str):
    return client.post(path, content=text, headers={"Content-Type": "application/json"})


def test_score_missing_completion_names_field(client):
    response = client.post("/score", json={"items": [{"reference": "x"}]})

    assert response.status_code == 422
    assert "items[0].completion: Field required" in response.json()["message"]


def test_score_wrong_type_names_field(client, item):
    response = client.post("/score", json={"items": [item(), {"completion": 3, "reference": "x"}]})

    assert response.status_code == 422
    assert "items[1].completion" in response.json()["message"]


def test_score_items_not_a_list(client):
    response = client.post("/score", json={"items": "text"})

    assert response.status_code == 422
    assert response.json()["message"].startswith("items:")


def test_score_negative_weight_rejected(client, item):
    response = client.post("/score", json={"items": [item()], "weights": {"entity": -1}})

    assert response.status_code == 422
    assert "weights.entity" in response.json()["message"]
    assert "finite number >= 0" in response.json()["message"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_score_json_nan_and_infinity_rejected(client, constant):
    body = f'{{"items": [], "weights": {{"answer": {constant}}}}}'
    response = post_raw(client, "/score", body)

    assert response.status_code == 422
    assert f"{constant.lstrip('-')} is not valid JSON" in response.json()["message"]


def test_score_nan_in_options_rejected(client):
    response = post_raw(client, "/score", '{"items": [], "options": {"beta": NaN}}')

    assert response.status_code == 422


def test_score_unknown_option_rejected(client, item):
    response = client.post("/score", json={"items": [item()], "options": {"temperature": 1}})

    assert response.status_code == 422
    assert "options.temperature: Extra inputs are not permitted" in response.json()["message"]


def test_score_unknown_item_field_rejected(client, item):
    response = client.post("/score", json={"items": [item(answer="yes")]})

    assert response.status_code == 422
    assert "items[0].answer" in response.json()["message"]


def test_score_invalid_option_value_rejected(client, item):
    response = client.post("/score", json={"items": [item()], "options": {"metric": "cosine"}})

    assert response.status_code == 422
    assert "options.metric" in response.json()["message"]


def test_score_invalid_json_rejected(client):
    response = post_raw(client, "/score", '{"items": [')

    assert response.status_code == 422
    assert response.json()["message"].startswith("invalid JSON at character")


def test_score_validation_error_omits_input(client):
    response = client.post("/score", json={"items": [{"completion": "x" * 500}]})

    assert "x" * 500 not in response.text


def test_score_batch_limit_returns_413(make_client, item):
    client = make_client(max_batch_items=2)
    response = client.post("/score", json={"items": [item()] * 3})

    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "items has 3 entries, more than the limit of 2" in detail
    assert "KG_REWARD_MAX_BATCH_ITEMS" in detail


def test_score_text_limit_returns_413(make_client, item):
    client = make_client(max_text_chars=200)
    response = client.post("/score", json={"items": [item(), item(reference="r" * 201)]})

    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "items[1].reference has 201 characters, more than the limit of 200" in detail


def test_score_default_text_limit_is_extractor_limit(client, item):
    response = client.post("/score", json={"items": [item(completion="a " * 50_001)]})

    assert response.status_code == 413
    assert "limit of 100000" in response.json()["detail"]


def test_extract_batch_limit_returns_413(make_client):
    client = make_client(max_batch_items=1)
    response = client.post("/extract", json={"texts": ["a", "b"]})

    assert response.status_code == 413
    assert "texts has 2 entries" in response.json()["detail"]


def test_extract_mismatched_ids_rejected(client):
    response = client.post("/extract", json={"texts": ["a", "b"], "ids": ["a"]})

    assert response.status_code == 422
    assert "ids has 1 entries but texts has 2" in response.json()["message"]


def test_score_requires_token_when_set(make_client, item):
    client = make_client(api_token="s3cret")
    response = client.post("/score", json={"items": [item()]})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "KG_REWARD_API_TOKEN" in response.json()["detail"]


def test_score_rejects_wrong_token(make_client, item):
    client = make_client(api_token="s3cret")
    headers = {"Authorization": "Bearer wrong"}

    assert client.post("/score", json={"items": [item()]}, headers=headers).status_code == 401


def test_score_accepts_right_token(make_client, item):
    client = make_client(api_token="s3cret")
    headers = {"Authorization": "Bearer s3cret"}

    assert client.post("/score", json={"items": [item()]}, headers=headers).status_code == 200


@pytest.mark.parametrize("path", ["/extract", "/openrlhf/reward"])
def test_resource_routes_require_token(make_client, path):
    client = make_client(api_token="s3cret")

    assert client.post(path, json={}).status_code == 401


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_open_with_token_set(make_client, path):
    client = make_client(api_token="s3cret")

    assert client.get(path).status_code == 200


def test_empty_token_setting_leaves_routes_open(make_client, item):
    client = make_client(api_token="")

    assert client.post("/score", json={"items": [item()]}).status_code == 200


@pytest.mark.parametrize("value", ["NaN", "inf", "-Infinity"])
def test_score_nan_weight_as_string_rejected(client, item, value):
    response = client.post("/score", json={"items": [item()], "weights": {"relation": value}})

    assert response.status_code == 422
    assert "weights.relation: Input should be a valid number" in response.json()["message"]


def test_score_lone_surrogate_names_field(client):
    body = '{"items": [{"completion": "\\ud800 effusion", "reference": "Effusion."}]}'
    response = post_raw(client, "/score", body)

    assert response.status_code == 422
    assert "items[0].completion: contains a lone UTF-16 surrogate" in response.json()["message"]


def test_extract_lone_surrogate_names_field(client):
    response = post_raw(client, "/extract", '{"texts": ["ok", "\\udc00 effusion"]}')

    assert response.status_code == 422
    assert "texts[1]: contains a lone UTF-16 surrogate" in response.json()["message"]


def test_score_overflowing_weights_rejected(client, item):
    weights = {"entity": 1e308, "relation": 1e308}
    response = client.post("/score", json={"items": [item()], "weights": weights})

    assert response.status_code == 422
    assert "weights.entity: weight must be at most 1e+06" in response.json()["message"]


@pytest.mark.parametrize("reference", ["", "  \n"])
def test_score_blank_reference_rejected(client, item, reference):
    response = client.post("/score", json={"items": [item(reference=reference)]})

    assert response.status_code == 422
    assert "items[0].reference: must contain text" in response.json()["message"]


@pytest.mark.parametrize("value", ["0.5", True])
def test_score_weight_string_or_bool_rejected(client, item, value):
    response = client.post("/score", json={"items": [item()], "weights": {"entity": value}})

    assert response.status_code == 422
    assert "weights.entity: Input should be a valid number" in response.json()["message"]


def test_score_explain_string_rejected(client, item):
    response = client.post("/score", json={"items": [item()], "options": {"explain": "yes"}})

    assert response.status_code == 422
    assert "options.explain: Input should be a valid boolean" in response.json()["message"]


def test_score_invalid_utf8_body_rejected(client):
    body = b'{"items": [{"completion": "\xff", "reference": "Effusion."}]}'
    response = client.post("/score", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["detail"].startswith("body: invalid UTF-8 at byte 27")


def test_score_text_plain_body_gets_415(client):
    response = client.post("/score", content="{}", headers={"Content-Type": "text/plain"})

    assert response.status_code == 415
    assert "send Content-Type: application/json" in response.json()["detail"]
