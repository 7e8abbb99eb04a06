"""POST /score and POST /extract in-process, on the real pipeline."""

from __future__ import annotations

import pytest


def test_score_returns_one_result_per_item(client, item):
    response = client.post("/score", json={"items": [item(), item()]})

    assert response.status_code == 200
    body = response.json()
    assert len(body["rewards"]) == 2
    assert len(body["components"]) == 2
    assert body["explanations"] is None


def test_score_good_completion_beats_bad(client, item, samples):
    items = [item(samples["good"]), item(samples["bad"])]
    rewards = client.post("/score", json={"items": items}).json()["rewards"]

    assert rewards[0] > rewards[1]


def test_score_keeps_item_order(client, item, samples):
    forward = [item(samples["good"]), item(samples["bad"])]
    backward = list(reversed(forward))
    first = client.post("/score", json={"items": forward}).json()["rewards"]
    second = client.post("/score", json={"items": backward}).json()["rewards"]

    assert second == list(reversed(first))


def test_score_uses_each_items_reference(client, item, samples):
    other_reference = "<think>The lungs are clear. Cardiomegaly.</think><answer>no</answer>"
    items = [item(samples["bad"]), item(samples["bad"], reference=other_reference)]
    body = client.post("/score", json={"items": items}).json()

    assert body["rewards"][0] != body["rewards"][1]
    assert body["components"][0]["answer"] == 0.0
    assert body["components"][1]["answer"] == 1.0


def test_score_components_of_good_completion(client, item):
    components = client.post("/score", json={"items": [item()]}).json()["components"][0]

    assert components["answer"] == 1.0
    assert components["format"] == 1.0
    assert 0.0 < components["entity"] <= 1.0
    assert 0.0 <= components["relation"] <= 1.0


def test_score_reference_answer_field_wins(client, item):
    body = client.post("/score", json={"items": [item(reference_answer="no")]}).json()

    assert body["components"][0]["answer"] == 0.0


def test_score_weights_change_reward(client, item):
    weights = {"answer": 0.0, "entity": 0.0, "relation": 0.0, "format": 2.0}
    body = client.post("/score", json={"items": [item()], "weights": weights}).json()

    assert body["rewards"] == [pytest.approx(2.0)]


def test_score_service_default_weights_apply(make_client, item):
    client = make_client(weights={"answer": 3.0, "entity": 0.0, "relation": 0.0})
    body = client.post("/score", json={"items": [item()]}).json()

    assert body["rewards"] == [pytest.approx(3.0)]


def test_score_explanations_in_item_order(client, item):
    items = [item(id="first"), item(id="second")]
    body = client.post("/score", json={"items": items, "options": {"explain": True}}).json()

    assert [explanation["id"] for explanation in body["explanations"]] == ["first", "second"]
    assert ["pleural effusion", "disorder_present"] in body["explanations"][0]["entities"][
        "matched"
    ]


def test_score_chexpo_preset_matches_surface_text(client, item):
    options = {"preset": "chexpo", "explain": True}
    body = client.post("/score", json={"items": [item()], "options": options}).json()

    matched = body["explanations"][0]["entities"]["matched"]
    # Surface matching keeps the capital letter of "Small", which the reference lacks.
    assert ["Small", "size"] in body["explanations"][0]["entities"]["extra"]
    assert ["pleural effusion", "disorder_present"] in matched


def test_score_empty_batch_returns_empty_lists(client):
    body = client.post("/score", json={"items": []}).json()

    assert body == {"rewards": [], "components": [], "explanations": None}


def test_score_malformed_completion_format_zero(client, item):
    body = client.post("/score", json={"items": [item("no tags at all")]}).json()

    assert body["components"][0]["format"] == 0.0
    assert body["components"][0]["answer"] == 0.0


def test_score_cache_reused_across_requests(make_client, item):
    client = make_client(cache_size=16)
    client.post("/score", json={"items": [item(), item()]})
    client.post("/score", json={"items": [item()]})

    scorer = client.app.state.scorer
    assert (scorer.cache.hits, scorer.cache.misses) == (1, 1)


def test_score_cache_disabled_counts_only_misses(make_client, item):
    client = make_client(cache_size=0)
    client.post("/score", json={"items": [item()]})
    client.post("/score", json={"items": [item()]})

    scorer = client.app.state.scorer
    assert (scorer.cache.hits, scorer.cache.misses) == (0, 2)


def test_extract_returns_graph_per_text(client):
    texts = ["Small left pleural effusion.", "", "No pneumothorax."]
    body = client.post("/extract", json={"texts": texts, "ids": ["a", "b", "c"]}).json()

    assert [graph["id"] for graph in body["graphs"]] == ["a", "b", "c"]
    assert body["graphs"][1]["entities"] == []
    labels = {entity["label"] for entity in body["graphs"][2]["entities"]}
    assert labels == {"disorder_notpresent"}


def test_extract_empty_batch(client):
    assert client.post("/extract", json={"texts": []}).json() == {"graphs": []}


def test_score_batch_runs_one_pipeline_pass(client, item, samples, extractor, monkeypatch):
    calls = []
    original_extract = extractor.extract

    def counting_extract(texts, **kwargs):
        texts = list(texts)
        calls.append(len(texts))
        return original_extract(texts, **kwargs)

    monkeypatch.setattr(extractor, "extract", counting_extract)
    other = "<think>Cardiomegaly. Clear lungs.</think><answer>no</answer>"
    items = [item(samples["good"]), item(samples["bad"]), item(samples["bad"], reference=other)]
    client.post("/score", json={"items": items})

    # Two distinct completions and two distinct references, all in one extract call.
    assert calls == [4]


def test_score_explain_keeps_service_preset(make_client, item):
    client = make_client(options={"preset": "chexpo"})
    plain = client.post("/score", json={"items": [item()]}).json()
    explained = client.post("/score", json={"items": [item()], "options": {"explain": True}}).json()

    assert explained["rewards"] == plain["rewards"]
    # The chexpo preset matches surface text case-sensitively: "Small" is not "small".
    assert ["Small", "size"] in explained["explanations"][0]["entities"]["extra"]


def test_score_request_weight_keeps_other_defaults(make_client, item):
    client = make_client(weights={"format": 0.5})
    reply = client.post("/score", json={"items": [item()], "weights": {"answer": 1.0}}).json()
    components = reply["components"][0]

    expected = (
        components["answer"]
        + 0.5 * components["entity"]
        + 0.5 * components["relation"]
        + 0.5 * components["format"]
    )
    assert reply["rewards"][0] == pytest.approx(expected)


def test_score_request_preset_applies_over_defaults(make_client, item):
    client = make_client(options={"match": "canonical", "metric": "f1"})
    body = {"items": [item()], "options": {"preset": "chexpo", "explain": True}}
    explanation = client.post("/score", json=body).json()["explanations"][0]

    assert ["Small", "size"] in explanation["entities"]["extra"]


def test_score_empty_completion_scores_zero_graphs(client, item):
    components = client.post("/score", json={"items": [item("")]}).json()["components"][0]

    assert components["entity"] == 0.0
    assert components["relation"] == 0.0
