"""kg_reward: radiology knowledge-graph extraction and process rewards.

Importing this package is cheap: spaCy loads only when ``load()`` is called, so the
HTTP client (``kg_reward.client``) can be used by trainers without the pipeline.
"""
