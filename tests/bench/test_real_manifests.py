"""The real-manifests table: how one `apply --dry-run` outcome is classified and shown."""

from __future__ import annotations

from tests.bench.real_manifests import FIXTURES, Outcome, classify, render


def test_exit_status_and_warnings_decide_the_result() -> None:
    path = f"{FIXTURES}/app.yaml"
    refused = classify("app.yaml", 1, f"error: {path}: document 2: kind: Job is not supported\n")
    warned = classify("app.yaml", 0, f"Warning: {path}: document 1: x: ignored\nWarning: y\n")

    assert refused == Outcome("app.yaml", "refused", "document 2: kind: Job is not supported", 0)
    assert warned == Outcome("app.yaml", "warned", "document 1: x: ignored", 2)
    assert classify("app.yaml", 0, "") == Outcome("app.yaml", "accepted", "", 0)


def test_table_ends_with_the_counts() -> None:
    outcomes = [
        Outcome("a.yaml", "accepted", "", 0),
        Outcome("b.yaml", "refused", "document 1: kind: A | B", 0),
    ]

    markdown = render(outcomes, markdown=True).splitlines()

    assert markdown[2:4] == [
        "| a.yaml | accepted |  |",
        "| b.yaml | refused | document 1: kind: A / B |",
    ]
    assert markdown[-1] == "2 files: 1 accepted, 0 warned, 1 refused"


def test_every_fixture_has_its_source_in_the_readme() -> None:
    readme = (FIXTURES / "README.md").read_text()
    files = sorted(p.name for p in FIXTURES.iterdir() if p.name != "README.md")

    assert len(files) >= 30
    assert [f for f in files if f"| {f} |" not in readme] == []
