"""policy_trainer: SFT warm-up and GRPO with knowledge-graph rewards over HTTP."""
