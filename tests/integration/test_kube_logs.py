"""Container logs through the master: `kubectl logs` and `pinnace logs` against a real agent.

The agent reads Docker's log of the pod's container and streams it over its
node session; the master relays it to the HTTP API (kubectl) and to the gRPC
API (pinnace's CLI). Both see the same lines.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.integration.cluster import REPO, LocalCluster, wait_for
from tests.integration.kube_helpers import Kubectl, kubectls, over_spdy, write_kubeconfig

TALKER = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: talker
spec:
  replicas: 1
  selector:
    matchLabels:
      app: talker
  template:
    metadata:
      labels:
        app: talker
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: talk
        image: pinnace/httpd:latest
        command: ["/bin/sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stubborn
spec:
  replicas: 1
  selector:
    matchLabels:
      app: stubborn
  template:
    metadata:
      labels:
        app: stubborn
    spec:
      terminationGracePeriodSeconds: 120
      containers:
      - name: s
        image: pinnace/httpd:latest
        command: ["/bin/sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reader
spec:
  replicas: 1
  selector:
    matchLabels:
      app: reader
  template:
    metadata:
      labels:
        app: reader
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: r
        image: pinnace/httpd:latest
        stdin: true
        command: ["/bin/sh", "-c", "while read line; do echo got: $line; done"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: console
spec:
  replicas: 1
  selector:
    matchLabels:
      app: console
  template:
    metadata:
      labels:
        app: console
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: pinnace/httpd:latest
        stdin: true
        tty: true
        command: ["/bin/sh"]
"""


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^line (\d+)$", text, re.M)]


# One long scenario (logs, exec, attach, describe, --previous, a grace period) on one
# cluster: it took more than the default 300 s at load 60.
@pytest.mark.timeout(600)
def test_logs_stream_from_the_agent_to_kubectl_and_the_cli(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    cluster.start_agent("a")
    manifest = tmp_path / "talker.yaml"
    manifest.write_text(TALKER)
    config = write_kubeconfig(cluster)
    k = Kubectl(kubectls()[0], config, tmp_path)
    k.run("apply", "-f", str(manifest))
    k.run("rollout", "status", "deployment/talker", "--timeout=120s")
    pod = wait_for(
        "a running talker pod",
        lambda: next(
            (
                p["metadata"]["name"]
                for p in cluster.pods()
                if p["status"]["phase"] == "Running" and p["metadata"]["name"].startswith("talker-")
            ),
            None,
        ),
    )
    wait_for("five lines written", lambda: len(_numbers(k.run("logs", pod).stdout)) >= 5)

    whole = _numbers(k.run("logs", pod).stdout)
    assert whole[:5] == [0, 1, 2, 3, 4]
    tail = _numbers(k.run("logs", pod, "--tail=2").stdout)
    # The last two lines at least as new as the ones the whole log had.
    assert len(tail) == 2 and tail[1] == tail[0] + 1 and tail[1] >= whole[-1]
    by_deployment = _numbers(k.run("logs", "deployment/talker", "-c", "talk").stdout)
    assert by_deployment[:3] == [0, 1, 2]

    # -f follows: new lines arrive after the ones already written.
    follow = subprocess.Popen(
        [k.binary, "logs", "-f", "--tail=1", pod],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=k.env,
    )
    try:
        assert follow.stdout is not None
        first = _numbers(follow.stdout.readline())
        later = [_numbers(follow.stdout.readline())[0] for _ in range(3)]
        assert later == [first[0] + 1, first[0] + 2, first[0] + 3]
    finally:
        follow.kill()
        follow.wait(timeout=10)
        for pipe in (follow.stdout, follow.stderr):
            if pipe is not None:
                pipe.close()

    previous = k.run("logs", pod, "--previous", check=False)
    assert previous.returncode == 1
    assert "previous terminated container" in previous.stderr

    ours = _numbers(cluster.cli("logs", pod, "--tail", "3").stdout)
    assert len(ours) == 3 and ours == list(range(ours[0], ours[0] + 3))
    cli = subprocess.Popen(
        [sys.executable, "-m", "master.cli.main", "--master", cluster.master_address,
         "logs", "-f", pod],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cluster.env,
        cwd=REPO,
    )  # fmt: skip
    try:
        assert cli.stdout is not None
        assert _numbers(cli.stdout.readline()) == [0]
        assert _numbers(cli.stdout.readline()) == [1]
    finally:
        cli.kill()
        cli.wait(timeout=10)
        for pipe in (cli.stdout, cli.stderr):
            if pipe is not None:
                pipe.close()
    missing = cluster.cli("logs", "no-such-pod", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "no-such-pod" not found'

    _exec_through_kubectl_and_the_cli(cluster, config, tmp_path, pod)
    _attach_through_kubectl(cluster, config, tmp_path, pod)
    _describe_through_kubectl_and_the_cli(cluster, k, pod)
    _previous_after_a_restart(cluster, k, pod)
    _grace_period_of_a_delete(cluster, k)


def _grace_period_of_a_delete(cluster: LocalCluster, k: Kubectl) -> None:
    """--grace-period replaces the pod's 120 s: SIGKILL follows SIGTERM after 1 s."""
    stubborn = wait_for(
        "the stubborn pod running",
        lambda: next(
            (
                p["metadata"]["name"]
                for p in cluster.pods()
                if p["metadata"]["name"].startswith("stubborn-")
                and p["status"]["phase"] == "Running"
            ),
            None,
        ),
    )
    # kubectl waits for the pod to be gone and fails past --timeout: 100 s is shorter than the
    # pod's own 120 s grace, so only the 1 s asked for gets it deleted in time (however slow
    # the machine; the elapsed time itself is not this test's business).
    started = time.monotonic()
    k.run("delete", "pod", stubborn, "--grace-period=1", "--timeout=100s")
    print(f"kubectl delete --grace-period=1 returned after {time.monotonic() - started:.1f}s")
    assert all(p["metadata"]["name"] != stubborn for p in cluster.pods())


def _previous_after_a_restart(cluster: LocalCluster, k: Kubectl, pod: str) -> None:
    """A killed container restarts; --previous reads what the agent kept of the dead run."""
    written = _numbers(k.run("logs", pod).stdout)
    (victim,) = [c for c in cluster.containers() if c.labels.get("pinnace.pod") == pod]
    cluster.docker.api.kill(victim.id)

    def restarted() -> bool | None:
        found = [p for p in cluster.pods() if p["metadata"]["name"] == pod]
        statuses = found[0]["status"].get("containerStatuses") or [] if found else []
        up = bool(statuses) and statuses[0]["restartCount"] == 1 and statuses[0]["ready"]
        return up or None

    wait_for("the killed container running again", restarted)
    previous = _numbers(k.run("logs", pod, "--previous").stdout)
    assert previous[: len(written)] == written
    ours = _numbers(cluster.cli("logs", pod, "--previous", "--tail", "2").stdout)
    assert ours == previous[-2:]


def _describe_through_kubectl_and_the_cli(cluster: LocalCluster, k: Kubectl, pod: str) -> None:
    """kubectl describe reads the object and its events; pinnace describe prints the same."""
    theirs = k.run("describe", "pod", pod).stdout.splitlines()
    ours = cluster.cli("describe", "pod", pod).stdout.splitlines()
    for text in (theirs, ours):
        assert text[0].split() == ["Name:", pod]
        assert "Controlled By:" in "\n".join(text) and "  talk:" in text
        events = text.index("Events:")
        assert any("Started" in line for line in text[events:])

    # The fields kubectl prints, in its order, down to the events (ages aside).
    def fields(lines: list[str]) -> list[str]:
        return [line.split(":")[0] for line in lines if line and not line.startswith(" ")]

    assert fields(ours) == fields(theirs)
    node = cluster.cli("describe", "node", cluster.node("a")).stdout
    assert pod in node and "Non-terminated Pods:" in node  # pods of every namespace
    dep = cluster.cli("describe", "deployment/talker").stdout
    assert "NewReplicaSet:" in dep and "(1/1 replicas created)" in dep


def _exec_through_kubectl_and_the_cli(
    cluster: LocalCluster, config: Path, tmp_path: Path, pod: str
) -> None:
    """kubectl exec (WebSocket v5 channels) and pinnace exec, relayed over the node session."""
    script = "echo out; echo err >&2; exit 3"
    for binary in kubectls():  # the pinned 1.37 and Debian's 1.32
        kx = Kubectl(binary, config, tmp_path)
        for client in (kx, over_spdy(kx)):  # WebSocket, then plain SPDY (kubectl < 1.30)
            done = client.run("exec", pod, "-c", "talk", "--", "sh", "-c", script, check=False)
            assert (done.returncode, done.stdout) == (3, "out\n"), done.stderr
            assert "err" in done.stderr
    piped = subprocess.run(
        [kubectls()[0], "exec", "-i", pod, "--", "tr", "a-z", "A-Z"],
        input="hello\nworld\n", capture_output=True, text=True, env=kx.env, timeout=60,
    )  # fmt: skip
    assert (piped.returncode, piped.stdout) == (0, "HELLO\nWORLD\n"), piped.stderr
    spdy_piped = subprocess.run(
        [kubectls()[-1], "exec", "-i", pod, "--", "tr", "a-z", "A-Z"], input="hello\n",
        capture_output=True, text=True, env=over_spdy(kx).env, timeout=60,
    )  # fmt: skip
    assert (spdy_piped.returncode, spdy_piped.stdout) == (0, "HELLO\n"), spdy_piped.stderr

    # kubectl cp is tar over exec's stdin and stdout: 8 MiB in and back, paced by the
    # agent's acknowledgements rather than buffered.
    sent = tmp_path / "payload.bin"
    sent.write_bytes(os.urandom(8 * 1024 * 1024))
    kx.run("cp", str(sent), f"{pod}:/payload.bin", "-c", "talk")
    back = tmp_path / "back.bin"
    kx.run("cp", f"{pod}:/payload.bin", str(back), "-c", "talk")
    assert back.read_bytes() == sent.read_bytes()

    ours = cluster.cli("exec", pod, "--", "sh", "-c", script, check=False)
    assert (ours.returncode, ours.stdout, ours.stderr) == (3, "out\n", "err\n")
    fed = cluster.cli("exec", "-i", pod, "--", "wc", "-c", stdin=b"12345")
    assert fed.stdout.strip() == "5"
    missing = cluster.cli("exec", "no-such-pod", "--", "true", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "no-such-pod" not found'

    # -it on a terminal: a shell with a TTY of its own, its exit code passed through.
    pinnace = [sys.executable, "-m", "master.cli.main", "--master", cluster.master_address]
    for argv, env in (
        ([kubectls()[0], "exec", "-it", pod, "--", "sh"], kx.env),
        ([*pinnace, "exec", "-it", pod, "--", "sh"], cluster.env),
    ):
        code, screen = _on_a_terminal(argv, env, b"tty; exit 7\r")
        assert code == 7 and b"/dev/pts/" in screen, screen


def _attach_through_kubectl(
    cluster: LocalCluster, config: Path, tmp_path: Path, talker: str
) -> None:
    """kubectl attach (Docker's attach over the same channels): the main process's output
    from now on; with -i, lines typed reach a process reading its stdin (stdin: true)."""
    reader = _running_pod(cluster, "reader-")
    for n, binary in enumerate(kubectls()):
        kx = Kubectl(binary, config, tmp_path)
        for argv, typed, expected in (
            (["attach", talker], None, re.compile(r"^line \d+$")),
            (["attach", "-i", reader], f"hello {n}\n", re.compile(rf"^got: hello {n}$")),
        ):
            proc = subprocess.Popen(
                [binary, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, env=kx.env,
            )  # fmt: skip
            try:
                assert proc.stdin is not None and proc.stdout is not None
                if typed:
                    proc.stdin.write(typed)
                    proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], 30)
                line = proc.stdout.readline().rstrip("\n") if ready else ""
                assert expected.match(line), (argv, line)
            finally:
                proc.kill()
                proc.communicate(timeout=10)
    # -t: a shell whose terminal is the container's TTY, sized as kubectl's terminal, and
    # resized with it (kubectl's resize channel); exec -t the same.
    console = _running_pod(cluster, "console-")
    k = Kubectl(kubectls()[0], config, tmp_path)
    _resized_on_a_terminal([k.binary, "attach", "-it", console], k.env)
    _resized_on_a_terminal([k.binary, "exec", "-it", console, "--", "sh"], k.env)
    # Debian's kubectl over plain SPDY: the resizes travel on their own stream, as JSON.
    _resized_on_a_terminal([kubectls()[-1], "attach", "-it", console], over_spdy(k).env)
    missing = Kubectl(kubectls()[0], config, tmp_path).run(
        "attach", "-i", "no-such-pod", check=False
    )
    assert missing.returncode == 1 and 'pods "no-such-pod" not found' in missing.stderr
    # pinnace attach over gRPC; its stdin's end reaches the process, which then exits.
    ours = cluster.cli("attach", "-i", reader, stdin=b"hello cli\n")
    assert (ours.returncode, ours.stdout) == (0, "got: hello cli\n"), ours.stderr


def _running_pod(cluster: LocalCluster, prefix: str) -> str:
    name: str = wait_for(
        f"a running {prefix}* pod",
        lambda: next(
            (
                p["metadata"]["name"]
                for p in cluster.pods()
                if p["status"]["phase"] == "Running" and p["metadata"]["name"].startswith(prefix)
            ),
            None,
        ),
    )
    return name


def _set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _resized_on_a_terminal(argv: list[str], env: dict[str, str]) -> None:
    """Run `argv` (a shell on the container's TTY) on a 33x111 pseudo-terminal: `stty size`
    in the container says 33 111; resized to 40x120 (SIGWINCH, as a terminal does), 40 120."""
    master, slave = pty.openpty()
    _set_size(slave, 33, 111)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    screen = b""

    def until(wanted: bytes, typing: bytes = b"") -> None:
        """Read until `wanted` shows; type `typing` again each second until then (the
        resize travels on its own channel: the first `stty size` may come before it)."""
        nonlocal screen
        deadline, typed_at = time.monotonic() + 30, 0.0
        while wanted not in screen and proc.poll() is None and time.monotonic() < deadline:
            if typing and time.monotonic() - typed_at > 1:
                os.write(master, typing)
                typed_at = time.monotonic()
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                screen += os.read(master, 4096)
        assert wanted in screen, (argv, screen)

    try:
        # attach prints its hint, exec's shell its banner, once the stream is up.
        until(b"see a command prompt" if "attach" in argv else b"# ")
        until(b"\n33 111", typing=b"stty size\r")
        _set_size(master, 40, 120)
        proc.send_signal(signal.SIGWINCH)
        until(b"\n40 120", typing=b"stty size\r")
    finally:
        proc.kill()
        proc.wait(timeout=10)
        os.close(master)


def _on_a_terminal(argv: list[str], env: dict[str, str], typed: bytes) -> tuple[int, bytes]:
    """Run `argv` on a pseudo-terminal; type `typed` at the shell's first prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 30
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the other side closed
                    break
                if typed and b"# " in screen + chunk:
                    os.write(master, typed)
                    typed = b""
                screen += chunk
        return proc.wait(timeout=10), screen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
