"""Prometheus metrics of the master: the series (series.py), their scrape-time cluster gauges
(cluster.py) and the HTTP endpoint that serves them (http.py, `--metrics-listen`)."""
