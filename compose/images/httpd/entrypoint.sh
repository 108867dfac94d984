#!/bin/sh
# Entrypoint of pinnace/httpd (busybox sh). busybox httpd as PID 1 would ignore SIGTERM (the
# kernel drops signals PID 1 has no handler for), so this shell stays PID 1, runs httpd as a
# child and exits on TERM/INT at once. CRASH_AFTER=<seconds> makes it exit with EXIT_CODE
# (default 1) after that long, which is how tests make a pod crash.
set -eu

host=$(uname -n)
mkdir -p /www
cat >/www/index.html <<PAGE
<!DOCTYPE html>
<html>
<head><title>pinnace httpd</title></head>
<body>
<h1>pinnace httpd</h1>
<p>Served by <b id="hostname">$host</b>.</p>
<p id="message">${MESSAGE:-}</p>
</body>
</html>
PAGE
echo ok >/www/healthz

httpd -f -p "${PORT:-80}" -h /www &
httpd_pid=$!
echo "pinnace-httpd: serving /www on port ${PORT:-80} as $host" >&2
trap 'kill "$httpd_pid" 2>/dev/null; exit 0' TERM INT

if [ -n "${CRASH_AFTER:-}" ]; then
	# A background sleep plus wait, so a TERM still interrupts the countdown.
	sleep "$CRASH_AFTER" &
	wait $!
	echo "pinnace-httpd: crashing on purpose after ${CRASH_AFTER}s with exit code ${EXIT_CODE:-1}" >&2
	kill "$httpd_pid" 2>/dev/null || true
	exit "${EXIT_CODE:-1}"
fi

# httpd exiting on its own is a failure the container should show.
set +e
wait "$httpd_pid"
code=$?
echo "pinnace-httpd: httpd exited with $code" >&2
exit "$code"
