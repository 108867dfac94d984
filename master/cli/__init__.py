"""The `pinnace` command line: kubectl-style verbs over the cluster gRPC API."""

import os

# gRPC's C core logs each failed TLS handshake to stderr (read once, when grpc loads);
# the CLI reports failures in one sentence of its own instead.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
