"""Stages of the ``policy-trainer`` command line, one module each."""
