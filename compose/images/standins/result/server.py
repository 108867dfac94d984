"""The voting app's results, as a stand-in: the counts from PostgreSQL, over HTTP.

Reads what the original reads (SELECT vote, COUNT(id) ... FROM votes GROUP BY vote, from the
database at the Service `db`, user and password postgres) on every request, and serves it
on PORT: GET /scores answers the JSON the original pushes to browsers over socket.io,
{"a": N, "b": M}; GET / a page with the same numbers. Until the worker has made the table,
the counts are 0; when the database does not answer, 503 with the reason.
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

DSN = "host=db user=postgres password=postgres dbname=postgres connect_timeout=5"
QUERY = "SELECT vote, COUNT(id) AS count FROM votes GROUP BY vote"


def scores() -> dict[str, int]:
    counts = {"a": 0, "b": 0}
    db = psycopg2.connect(DSN)
    try:
        with db.cursor() as cursor:
            cursor.execute(QUERY)
            for vote, count in cursor.fetchall():
                counts[vote] = int(count)
    except psycopg2.errors.UndefinedTable:
        pass  # no vote processed yet: the worker creates the table
    finally:
        db.close()
    return counts


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path not in ("/", "/scores"):
            self.answer(404, "text/plain", "not found\n")
            return
        try:
            counts = scores()
        except psycopg2.Error as e:
            print(f"Waiting for db ({str(e).strip()})", file=sys.stderr, flush=True)
            self.answer(503, "text/plain", f"Waiting for db: {str(e).strip()}\n")
            return
        if self.path == "/scores":
            self.answer(200, "application/json", json.dumps(counts))
            return
        total = sum(counts.values())
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Results</title></head>"
            f"<body><p>Cats: <b id='a'>{counts['a']}</b> Dogs: <b id='b'>{counts['b']}</b></p>"
            f"<p>{total} votes (pinnace's stand-in for examplevotingapp_result)</p></body></html>"
        )
        self.answer(200, "text/html; charset=utf-8", page)

    def answer(self, status: int, kind: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "4000"))
    print(f"App running on port {port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
