"""The multi-tier apps bench's pure parts: which files and images, pod counts, the table."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.bench.apps import (
    APPS,
    BUILD,
    FIXTURES,
    Run,
    pod_counts,
    render,
    replicas_wanted,
    seconds,
)


def _images(files: tuple[str, ...]) -> set[str]:
    found = set()
    for name in files:
        for doc in yaml.safe_load_all((FIXTURES / name).read_text()):
            if doc and doc.get("kind") == "Deployment":
                for c in doc["spec"]["template"]["spec"]["containers"]:
                    found.add(c["image"])
    return found


def test_every_image_an_app_names_is_a_stand_in_its_build_target_makes() -> None:
    script = BUILD.read_text()
    for app in APPS.values():
        body = re.search(rf"^build_{app.images}\(\) \{{\n(.*?)^\}}", script, re.M | re.S)
        assert body is not None, app.images
        made = set(re.findall(r"build_standin (\S+)", body.group(1)))
        assert _images(app.files) == made, app.name
        assert f"{app.images}) build_{app.images} ;;" in script


def test_each_app_applies_every_service_its_programs_connect_to() -> None:
    def services(files: tuple[str, ...]) -> set[str]:
        return {
            doc["metadata"]["name"]
            for name in files
            for doc in yaml.safe_load_all((FIXTURES / name).read_text())
            if doc and doc.get("kind") == "Service"
        }

    # The names the original programs dial (guestbook.php, run.sh; app.py, Program.cs,
    # server.js) and the ones the bench drives.
    assert services(APPS["guestbook"].files) == {"redis-master", "redis-replica", "frontend"}
    assert services(APPS["voting"].files) == {"redis", "db", "vote", "result"}
    assert services(APPS["podinfo"].files) == {"backend", "frontend"}


def test_the_pods_wanted_are_the_deployments_replicas() -> None:
    assert replicas_wanted(APPS["guestbook"]) == 1 + 2 + 3
    assert replicas_wanted(APPS["voting"]) == 5
    assert replicas_wanted(APPS["podinfo"]) == 2


def _pod(phase: str, ready: bool, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p"}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "containerStatuses": [{"ready": ready}]}}


def test_a_pod_counts_as_running_only_when_ready_and_not_being_deleted() -> None:
    pods = [_pod("Running", True), _pod("Running", False), _pod("Pending", False)]
    pods.append(_pod("Running", True, deleting=True))
    assert pod_counts(pods) == (1, 3)


def test_seconds_gives_the_median_the_worst_and_the_runs_that_never_got_there() -> None:
    assert seconds([3.0, 1.0, 2.0]) == "2.0 s (worst 3.0)"
    assert seconds([4.0]) == "4.0 s"
    assert seconds([None, 2.0, 4.0]) == "3.0 s (worst 4.0), 1 run(s) never"
    assert seconds([None]) == "-"


def test_the_table_says_no_when_one_run_did_not_answer_and_why() -> None:
    apps = [APPS["guestbook"]]
    runs = {
        "guestbook": [
            Run("guestbook", 6, 6, 2, True, 20.0, 30.0),
            Run("guestbook", 6, 5, 1, False, None, None, "get: 0 timed out"),
        ]
    }
    text = render(apps, runs)
    row = text.splitlines()[2]
    assert row.split(" | ")[2].strip() == "5/6"
    assert row.split(" | ")[3].strip() == "1/2"
    assert "no (1/2 runs)" in row
    assert "30.0 s, 1 run(s) never" in row
    assert text.splitlines()[-1] == "guestbook: get: 0 timed out"
