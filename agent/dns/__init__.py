"""The node's cluster DNS: a dnsmasq the agent runs for its pods (render.py, server.py)."""
