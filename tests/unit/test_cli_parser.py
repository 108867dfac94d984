"""The parser built for the one command a command line names reads it as the full parser
does (master/cli/main.py: `build_parser(command)`, `_command_of`): the same values, the
same errors, and help that still lists every command."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Sequence

import pytest

from master.cli import main as main_module
from master.cli.main import COMMANDS, _command_of, apply_line, build_parser

LINES = [
    ["apply", "-f", "web.yaml"],
    ["--master", "10.0.0.1:7400", "apply", "-f", "a.yaml", "-f", "b/", "-R", "--dry-run"],
    ["--master=10.0.0.1:7400", "--insecure", "apply", "-n", "team", "-f", "-"],
    ["--config", "c.conf", "get", "pods", "-o", "wide", "-l", "app=web", "-A"],
    ["get", "deployment/web", "-o", "json", "--show-managed-fields"],
    ["--config=c.conf", "delete", "deployment", "web", "--grace-period", "0"],
    ["scale", "deployment", "web", "--replicas", "3", "-n", "x"],
    ["logs", "web-1", "-c", "app", "-f", "--tail", "10"],
    ["exec", "web-1", "-i", "-t"],
    ["cordon", "node-1"],
    ["uncordon", "node-1"],
    ["drain", "node-1", "--timeout", "5"],
    ["rollout", "undo", "deployment/web", "--to-revision", "2"],
    ["top", "pods"],
    ["token", "create", "--ttl", "1h"],
    ["kubeconfig", "--server", "https://x:6443"],
    ["describe", "pod", "web-1"],
    ["attach", "web-1", "-i"],
    ["create", "ns", "team", "--dry-run"],
    ["lb", "stop", "--data-dir", "/d"],
    ["master", "--listen", "127.0.0.1:0", "--no-lb", "--node-grace", "0"],
    # Errors: a command's own mistakes, and lines the full parser alone reads.
    ["apply"],
    ["apply", "-f"],
    ["get"],
    ["scale", "deployment", "web", "--replicas", "three"],
    ["top", "services"],
    ["master", "--node-grace", "-1"],
    ["--master", "--insecure", "apply", "-f", "x"],
    ["--mast", "10.0.0.1:7400", "apply", "-f", "x"],
    ["--insecure", "aply", "-f", "x"],
    ["--", "apply", "-f", "x"],
    [],
]


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: object = vars(parser.parse_args(argv))
        except SystemExit as e:
            result = ("exit", e.code)
    return result, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", LINES, ids=lambda a: " ".join(a) or "(none)")
def test_the_named_command_s_parser_reads_a_line_as_the_full_parser_does(
    argv: list[str],
) -> None:
    assert _parse(build_parser(_command_of(argv)), argv) == _parse(build_parser(), argv)


def test_only_the_named_command_is_built() -> None:
    assert _command_of(["--master", "m:1", "--insecure", "apply", "-f", "x"]) == "apply"
    assert _subcommands(build_parser("apply")) == ["apply"]


def test_every_command_is_known_and_help_lists_them_all() -> None:
    full = build_parser()

    assert set(_subcommands(full)) == COMMANDS
    for help_line in (["-h"], ["--help"], ["--he"], ["--insecure", "-h", "apply"]):
        assert _command_of(help_line) is None
    _, out, _ = _parse(build_parser(_command_of(["-h", "apply"])), ["-h", "apply"])
    assert all(name in out for name in COMMANDS)


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


@pytest.mark.parametrize("columns", ["57", "", "junk"])
@pytest.mark.parametrize("argv", [["-h"], ["apply", "-h"], ["master", "-h"], ["get"]])
def test_help_and_usage_are_as_wide_as_argparse_makes_them(
    monkeypatch: pytest.MonkeyPatch, columns: str, argv: list[str]
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    ours = _parse(build_parser(_command_of(argv)), argv)
    monkeypatch.setattr(main_module, "_formatter", argparse.HelpFormatter)

    assert ours == _parse(build_parser(_command_of(argv)), argv)


# Lines apply_line reads itself, and lines it must leave to argparse (None).
APPLY_LINES = [
    ["apply", "-f", "web.yaml"],
    ["apply", "-f", "-"],
    ["apply", "--filename", "a.yaml", "-f", "b/", "--filename=c.yaml", "--filename="],
    ["apply", "-f", "a", "-n", "x", "--namespace", "y", "--namespace=z", "-R", "--dry-run"],
    ["apply", "-f", "a", "--recursive", "-n", "", "--dry-run", "--dry-run"],
    ["--master", "m:1", "--config", "c", "--insecure", "apply", "-f", "apply"],
    [
        "--master=m:1",
        "--master",
        "n:2",
        "--config=",
        "--insecure",
        "--insecure",
        "apply",
        "-f",
        "x",
    ],
    ["--master", "apply", "apply", "-f", "x"],
    ["apply", "-f", "x y", "-n", "a=b"],
]
ARGPARSE_LINES = [
    [],
    ["apply"],
    ["apply", "-f"],
    ["apply", "-n", "x"],
    ["apply", "-f", "-x"],
    ["apply", "-f", "-1"],
    ["apply", "-f", "-x y"],
    ["apply", "-fweb.yaml"],
    ["apply", "-f=web.yaml"],
    ["apply", "--file", "web.yaml"],
    ["apply", "--filename", "--dry-run"],
    ["apply", "-f", "x", "--dry-run=1"],
    ["apply", "-f", "x", "-Rn", "y"],
    ["apply", "-f", "x", "--"],
    ["apply", "-f", "x", "extra"],
    ["apply", "-f", "x", "apply"],
    ["apply", "-f", "x", "--master", "m:1"],
    ["apply", "-h"],
    ["-h", "apply", "-f", "x"],
    ["--mast", "m:1", "apply", "-f", "x"],
    ["--master", "--insecure", "apply", "-f", "x"],
    ["--insecure=1", "apply", "-f", "x"],
    ["--config", "apply", "-f", "x"],
    ["get", "pods"],
    ["--", "apply", "-f", "x"],
]


@pytest.mark.parametrize("argv", APPLY_LINES, ids=" ".join)
def test_apply_line_reads_a_plain_apply_line_as_argparse_does(argv: list[str]) -> None:
    fast = apply_line(argv)

    assert fast is not None
    assert (vars(fast), "", "") == _parse(build_parser(), argv)


@pytest.mark.parametrize("argv", ARGPARSE_LINES, ids=lambda a: " ".join(a) or "(none)")
def test_apply_line_leaves_every_other_line_to_argparse(argv: list[str]) -> None:
    assert apply_line(argv) is None
