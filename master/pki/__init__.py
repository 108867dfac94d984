"""The cluster's public-key infrastructure: CA, certificates, join tokens, node identities."""
