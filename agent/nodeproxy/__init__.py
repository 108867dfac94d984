"""The node proxy: Services' cluster IPs answered on every node (kube-proxy's userspace model).

table.py    the service table the master sends (plain data, converted from the wire)
render.py   that table -> an HAProxy config (pure)
route.py    the service range made local to the node (`ip route replace local CIDR dev lo`)
process.py  the HAProxy process: start, hitless reload, adopt, stop
proxy.py    the shell: the newest table in, the config written and HAProxy reloaded
"""
