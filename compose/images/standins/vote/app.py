"""The voting app's front door, as a stand-in: one page, two options, each vote pushed to Redis.

Same contract as the original on the wire, so the worker (and a user's browser) cannot tell:
form field `vote` (a or b) POSTed to /, the voter's id in the cookie `voter_id` (a new one
when absent), and the vote as JSON {"voter_id", "vote"} RPUSHed onto the list `votes` of the
Redis at the Service name `redis`. Flask and redis-py are Debian's packages.
"""

import html
import json
import os
import secrets
import socket

from flask import Flask, make_response, request
from redis import Redis

OPTION_A = os.getenv("OPTION_A", "Cats")
OPTION_B = os.getenv("OPTION_B", "Dogs")
HOSTNAME = socket.gethostname()

app = Flask(__name__)
redis = Redis(host="redis", db=0, socket_timeout=5)

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{a} vs {b}!</title></head>
<body>
<h3>{a} vs {b}!</h3>
<form method="POST" action="/">
<button name="vote" value="a">{a}</button>
<button name="vote" value="b">{b}</button>
</form>
<p id="vote">{said}</p>
<p><small>Processed by container ID <span id="hostname">{host}</span>
(pinnace's stand-in for examplevotingapp_vote)</small></p>
</body></html>
"""


@app.route("/", methods=["GET", "POST"])
def vote() -> object:
    voter_id = request.cookies.get("voter_id") or secrets.token_hex(8)
    said = ""
    if request.method == "POST":
        choice = request.form["vote"]
        app.logger.info("Received vote for %s", choice)
        redis.rpush("votes", json.dumps({"voter_id": voter_id, "vote": choice}))
        said = f"You voted {html.escape(OPTION_A if choice == 'a' else OPTION_B)}"
    page = PAGE.format(
        a=html.escape(OPTION_A), b=html.escape(OPTION_B), said=said, host=html.escape(HOSTNAME)
    )
    response = make_response(page)
    response.set_cookie("voter_id", voter_id)
    return response


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=80, threaded=True)
