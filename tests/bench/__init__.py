"""Benchmarks: pinnace against plain `docker run` and Docker Swarm on the same engine."""
