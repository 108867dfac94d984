"""The voting app's worker, as a stand-in: votes from Redis into PostgreSQL.

Does what the original (.NET) does, against the same names: connects to the database at the
Service `db` (user and password postgres) and to Redis at the Service `redis`, waiting for
each as long as it takes; creates the table `votes` (id unique, vote) when missing; then pops
one JSON vote at a time from the list `votes` and inserts it, or updates the voter's row when
they voted before. A lost connection is made again; a popped vote is held until it is
written, so none is dropped on the way.
"""

import json
import sys
import time

import psycopg2
from redis import Redis
from redis.exceptions import RedisError

DSN = "host=db user=postgres password=postgres dbname=postgres connect_timeout=5"
CREATE = """CREATE TABLE IF NOT EXISTS votes (
    id VARCHAR(255) NOT NULL UNIQUE,
    vote VARCHAR(255) NOT NULL
)"""
UPSERT = (
    "INSERT INTO votes (id, vote) VALUES (%s, %s) "
    "ON CONFLICT (id) DO UPDATE SET vote = EXCLUDED.vote"
)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def database() -> "psycopg2.extensions.connection":
    while True:
        try:
            db = psycopg2.connect(DSN)
            db.autocommit = True
            with db.cursor() as cursor:
                cursor.execute(CREATE)
            say("Connected to db")
            return db
        except psycopg2.Error as e:
            say(f"Waiting for db ({str(e).strip()})")
            time.sleep(1)


def main() -> None:
    db = database()
    redis = Redis(host="redis", db=0, socket_timeout=5)
    while True:
        try:
            popped = redis.blpop(["votes"], timeout=1)
        except RedisError as e:
            say(f"Waiting for redis ({e})")
            time.sleep(1)
            continue
        if popped is None:
            continue
        vote = json.loads(popped[1])
        say(f"Processing vote for '{vote['vote']}' by '{vote['voter_id']}'")
        while True:
            try:
                with db.cursor() as cursor:
                    cursor.execute(UPSERT, (vote["voter_id"], vote["vote"]))
                break
            except psycopg2.OperationalError:
                say("Reconnecting DB")
                db = database()


if __name__ == "__main__":
    main()
