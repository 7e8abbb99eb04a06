"""The FastAPI reward service: ``create_app(settings)`` builds it, ``kg-reward serve`` runs it.

Routes (OpenAPI docs at ``/docs``):

- ``POST /score``: ``kg_schema.ScoreRequest`` in, ``ScoreResponse`` out, in item order.
- ``POST /extract``: ``ExtractRequest`` in, ``ExtractResponse`` out.
- ``POST /openrlhf/reward``: OpenRLHF's remote reward-model protocol
  (``routes/openrlhf.py`` describes it).
- ``GET /healthz`` (alive), ``GET /readyz`` (pipeline loaded, else 503), ``GET /metrics``
  (Prometheus).

Errors: 422 for an invalid body, with ``message`` naming each field (JSON NaN and
Infinity included); 413 past ``KG_REWARD_MAX_BATCH_ITEMS`` or ``KG_REWARD_MAX_TEXT_CHARS``;
401 without the bearer token when ``KG_REWARD_API_TOKEN`` is set (probes, metrics and docs
stay open); 503 while the pipeline loads. Settings: ``kg_reward.service.settings``.
"""
