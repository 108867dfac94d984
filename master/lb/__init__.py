"""The load balancer edge: a real HAProxy programmed by the master.

`model` holds the data, `endpoints` turns Services and Pods into it, `slots` decides which
endpoint sits in which server slot, `render` turns a slot table into haproxy.cfg, `plan` turns a
change into Runtime API commands or a reload (all pure); `runtime` speaks HAProxy's socket
protocols and `haproxy.HAProxyDriver` owns the process.
"""
