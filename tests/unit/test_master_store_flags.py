"""`pinnace master`'s store flags that do not fit together: one sentence, exit 1, nothing
started (checked in-process: the refusal comes before anything is opened)."""

from __future__ import annotations

from pathlib import Path

import pytest

from master.cli.main import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "etcd"], "pinnace master: --store etcd needs --etcd-endpoints URLS\n"),
        (
            ["--etcd-endpoints", "http://127.0.0.1:2379"],
            "pinnace master: --etcd-endpoints needs --store etcd\n",
        ),
        (
            ["--cluster-secret-file", "secret"],
            "pinnace master: --cluster-secret-file needs --store etcd\n",
        ),
        (
            ["--store", "etcd", "--etcd-endpoints", "127.0.0.1:2379"],
            "pinnace master: --etcd-endpoints: '127.0.0.1:2379' is not an etcd URL like "
            "https://10.0.0.1:2379\n",
        ),
        (
            ["--store", "etcd", "--etcd-endpoints", "http://e:2379", "--etcd-timeout", "0.5s"],
            "pinnace master: --etcd-timeout: must be at least 1s, got '0.5s'\n",
        ),
        (
            ["--store", "etcd", "--etcd-endpoints", "http://e:2379", "--leader-lease", "2s"],
            "pinnace master: --leader-lease needs --leader-elect\n",
        ),
        (
            [
                *("--store", "etcd", "--etcd-endpoints", "http://e:2379", "--leader-elect"),
                *("--leader-lease", "1500ms"),
            ],
            "pinnace master: --leader-lease: etcd's leases last whole seconds, got '1500ms' "
            "(try 1s or 2s)\n",
        ),
    ],
)
def test_flags_that_do_not_fit_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    status = main(["master", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path), *args])

    assert (status, capsys.readouterr().err) == (1, message)
