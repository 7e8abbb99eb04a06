"""Subcommands of the ``kg-reward`` command line, one module each."""
