"""Pods reachable at their own addresses across nodes: flannel's host-gw, without flannel.

plan.py     which nodes' pod subnets this machine routes, the ip/iptables commands (pure)
routes.py   the shell: the service table's node subnets in, routes and firewall rules out
"""
