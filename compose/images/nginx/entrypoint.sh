#!/bin/sh
# Entrypoint of pinnace's locally built nginx:latest. Writes the default page with this
# container's hostname in it (so a test or a demo can tell replicas apart behind a load
# balancer), listens on IPv6 only when the container has it (nginx refuses to start on a
# [::]:80 it cannot bind), then becomes the command, nginx in the foreground by default.
set -eu

html=/usr/share/nginx/html
marker='<!-- pinnace default page -->'
host=$(uname -n)

# A page someone put there (a volume, a derived image) is theirs: only ours is rewritten.
if [ ! -e "$html/index.html" ] || grep -qF "$marker" "$html/index.html"; then
	mkdir -p "$html"
	cat >"$html/index.html" <<PAGE
<!DOCTYPE html>
$marker
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>Served by <b id="hostname">$host</b>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
PAGE
fi

if [ -e /proc/net/if_inet6 ]; then
	echo 'listen [::]:80 default_server;' >/etc/nginx/snippets/listen-ipv6.conf
else
	rm -f /etc/nginx/snippets/listen-ipv6.conf
fi

exec "$@"
