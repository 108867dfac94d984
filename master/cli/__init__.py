"""The `pinnace` command line: kubectl-style verbs over the cluster gRPC API."""
