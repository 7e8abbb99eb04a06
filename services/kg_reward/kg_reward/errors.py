"""Exceptions that kg_reward raises on bad input.

    KGRewardError
     +-- InputError          invalid text or batch handed to the extractor or the reward
     |    +-- TextTooLongError
     +-- CommandError        a command-line argument or input file is unusable (exit 2)

Client-side errors live in ``kg_reward.client``.
"""

from __future__ import annotations


class KGRewardError(Exception):
    """Base class of the errors raised by kg_reward."""


class InputError(KGRewardError, ValueError):
    """An input text or batch is invalid; the message names the value and the fix."""


class TextTooLongError(InputError):
    """A text is longer than the extractor's documented character limit."""


class CommandError(KGRewardError):
    """A command-line input is unusable; the CLI prints the message and exits with 2."""
