"""Adapters that plug the kg_reward client into RL trainers (TRL, verl).

None of them imports its trainer library: they follow the trainers' calling conventions
and only need ``kg_reward.client``.
"""
