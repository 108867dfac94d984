"""`pinnace exec`: the command after `--` keeps its own flags."""

from __future__ import annotations

from master.cli.main import build_parser, split_exec_command


def test_the_command_after_the_double_dash_keeps_its_flags() -> None:
    argv = ["--master", "m:1", "exec", "-it", "web-1", "-c", "side", "--", "ls", "-c", "-i"]
    ours, command = split_exec_command(argv)
    assert command == ["ls", "-c", "-i"]
    args = build_parser().parse_args(ours)
    assert (args.pod, args.container, args.stdin, args.tty, args.argv) == (
        "web-1", "side", True, True, []
    )  # fmt: skip


def test_without_a_double_dash_the_words_after_the_pod_are_the_command() -> None:
    ours, command = split_exec_command(["exec", "web-1", "date"])
    assert command == []
    assert build_parser().parse_args(ours).argv == ["date"]
    # Other commands' `--` is left alone.
    assert split_exec_command(["get", "pods", "--", "x"]) == (["get", "pods", "--", "x"], [])
