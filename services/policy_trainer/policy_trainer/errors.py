"""Exceptions of the policy trainer.

    PolicyTrainerError
     +-- ConfigError     a config file, field or command-line override is invalid (exit 2)
     +-- DataError       an input dataset or image cannot be used (exit 2 via ConfigError)
"""

from __future__ import annotations


class PolicyTrainerError(Exception):
    """Base class of the errors raised by policy_trainer."""


class ConfigError(PolicyTrainerError, ValueError):
    """An invalid configuration or input; the message names the field, the value and the fix."""


class DataError(ConfigError):
    """An input file, record or image is unusable."""
