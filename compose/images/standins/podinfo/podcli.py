#!/usr/bin/python3
"""podcli's checks as the manifests' exec probes call them: `podcli check http ADDRESS`
(exit 0 on a 2xx or 3xx answer) and `podcli check tcp HOST:PORT` (exit 0 when it connects)."""

import socket
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "check" or argv[1] not in ("http", "tcp"):
        print("usage: podcli check http|tcp ADDRESS", file=sys.stderr)
        return 2
    address = argv[2]
    if argv[1] == "tcp":
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
            return 0
        except OSError as e:
            print(f"check failed: {e}", file=sys.stderr)
            return 1
    url = address if "://" in address else f"http://{address}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return 0 if 200 <= response.status < 400 else 1
    except (urllib.error.URLError, OSError) as e:
        print(f"check failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
