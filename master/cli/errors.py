"""The CLI's one user-facing failure, in a module of its own: master/cli/main.py catches it
before it has imported gRPC (master/cli/client.py raises most of them)."""

from __future__ import annotations


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""
