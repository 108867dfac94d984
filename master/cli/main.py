"""`pinnace`: the entry point for every command (master, agent and the kubectl-style verbs).

`pinnace agent ...` replaces this process with `python -m agent ...`, so the
master package never imports the agent. Every user-facing failure ends as one
line on stderr and exit status 1; argument mistakes exit 2, as argparse does.

A kubectl-style verb run as a program (`run`, the `pinnace` script) ends without the
interpreter's teardown once its output is flushed: unwinding gRPC, protobuf and ~250
modules took ~20 ms of CPU after every command, on the machine's cores while the
engine starts the containers an `apply` asked for (apply -> 3 running, issue 15).
The master and `lb` run their own shutdown and end as usual; `main` itself (tests call
it) always returns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import SimpleNamespace

from master.cli.config import select as select_credentials
from master.cli.errors import CliError

# typing and pathlib are not imported at run time: `apply` starts without them (~3-5 ms of
# the CLI's start-up before it sends, issue 15); the master's code imports them when it runs.
# mypy reads any constant named TYPE_CHECKING as typing's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from pathlib import Path
    from typing import Any, NoReturn, Protocol

    from master.store.etcd_client import EtcdSettings

# How long a verb runs before the cyclic garbage collector is back (see _collect_later).
COLLECTOR_OFF_SECONDS = 1.0

# Each command imports its own modules when it runs (below, in main): `pinnace get pods`
# should not pay for the master's store, the PKI's cryptography or the manifest model.


def _invalid(message: str) -> Exception:
    """argparse's error for a value its type function refuses (argparse is imported by
    then: only a parse calls the type functions)."""
    import argparse

    return argparse.ArgumentTypeError(message)


def _nonnegative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _invalid(f"must be a number of seconds, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise _invalid(f"must be >= 0 seconds, got {text!r}")
    return value


def _port_or_zero(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise _invalid(f"must be a port from 0 (off) to 65535, got {text!r}")
    return int(text)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _invalid(f"must be a number between 0 and 1, got {text!r}") from None
    if not 0 < value <= 1:
        raise _invalid(f"must be more than 0 and at most 1, got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _invalid(f"must be a number per second, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise _invalid(f"must be >= 0 per second (0: off), got {text!r}")
    return value


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _invalid(f"must be a number of seconds, got {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise _invalid(f"must be between 0.1 and 3600 seconds, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise _invalid(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _percentage(text: str) -> int:
    if not text.isdigit() or int(text) > 100:
        raise _invalid(
            f"must be a whole percentage from 0 (adaptive) to 100 (every node), got {text!r}"
        )
    return int(text)


def _default_data_dir() -> str:
    # Evaluated by build_parser for every command line (a command's dropped arguments too).
    home = os.path.expanduser("~")
    return os.environ.get("PINNACE_DATA_DIR") or os.path.join(home, ".pinnace", "master")


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size() gives it ($COLUMNS, else stdout's
    terminal, else 80), without importing shutil."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's help formatter, given the width argparse's would find itself. argparse
    makes one for every argument added (to check its metavar), and its own imports shutil
    for the width (and shutil bz2 and lzma): ~2 ms of every verb's start-up for help that
    is seldom printed."""
    import argparse

    return argparse.HelpFormatter(prog, width=_columns() - 2)


if TYPE_CHECKING:

    class _Arguments(Protocol):
        """What a command's block in build_parser does with its parser."""

        def add_argument(self, *args: Any, **kwargs: Any) -> Any: ...


class _NotBuilt:
    """The parser of a command the command line does not name: its arguments are dropped."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        return None


_NOT_BUILT = _NotBuilt()
COMMANDS = frozenset(
    {
        *("master", "agent", "lb", "token", "kubeconfig", "logs", "describe", "exec"),
        *("attach", "top", "apply", "create", "get", "delete", "scale", "cordon"),
        *("uncordon", "drain", "rollout"),
    }
)


def _command_of(argv: Sequence[str]) -> str | None:
    """The command `argv` names, when only the global flags, written out in full, come before
    it (as argparse then reads it too); None for anything else (help, an abbreviated or
    unknown flag, no command), which gets the parser of every command."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("--master", "--config"):
            i += 2
        elif token == "--insecure" or token.startswith(("--master=", "--config=")):
            i += 1
        else:
            return token if token in COMMANDS else None
    return None


def _value(argv: Sequence[str], i: int) -> str | None:
    """argv[i] when argparse would take it as the value of the option before it: "-" or
    anything not starting with "-" (the fast path leaves every other token to argparse)."""
    if i < len(argv) and (argv[i] == "-" or not argv[i].startswith("-")):
        return argv[i]
    return None


def apply_line(argv: Sequence[str]) -> SimpleNamespace | None:
    """An `apply` command line read without argparse, with the values argparse gives it;
    None for any line that is not plainly one (help, an abbreviated or joined flag, a value
    starting with "-", no -f, anything unknown), which argparse reads and reports. `apply`
    is on the way to a running pod (issue 15): argparse's import (with gettext and
    locale) and the parser's making were ~6 ms of its ~50 ms of CPU before it sends.
    tests/unit/test_cli_parser.py holds it to argparse, line by line."""
    line: dict[str, object] = {"master": None, "config": None, "insecure": False}
    i = 0
    while i < len(argv) and argv[i] != "apply":
        token = argv[i]
        if token in ("--master", "--config") and (value := _value(argv, i + 1)) is not None:
            line[token[2:]], i = value, i + 2
        elif token.startswith(("--master=", "--config=")):
            key, _, value = token[2:].partition("=")
            line[key], i = value, i + 1
        elif token == "--insecure":
            line["insecure"], i = True, i + 1
        else:
            return None
    files: list[str] = []
    line.update(command="apply", dry_run=False, recursive=False, namespace=None)
    i += 1
    while i < len(argv):
        token = argv[i]
        flag, joined, value = token.partition("=")
        if not joined and token in ("-f", "--filename", "-n", "--namespace"):
            if (value := _value(argv, i + 1)) is None:
                return None
            i += 1
        elif not joined and token == "--dry-run":
            line["dry_run"] = True
        elif not joined and token in ("-R", "--recursive"):
            line["recursive"] = True
        elif not (joined and flag in ("--filename", "--namespace")):
            return None
        if flag in ("-f", "--filename"):
            files.append(value)
        elif flag in ("-n", "--namespace"):
            line["namespace"] = value
        i += 1
    if not files:  # also: no `apply` at all
        return None
    return SimpleNamespace(**line, filename=files)


def _namespace_flags(p: _Arguments, all_namespaces: bool = False) -> None:
    """kubectl's -n/--namespace (and -A/--all-namespaces where a list makes sense)."""
    p.add_argument(
        "-n",
        "--namespace",
        default=None,
        metavar="NS",
        help='the namespace (default: "default"; cluster-scoped kinds ignore it)',
    )
    if all_namespaces:
        p.add_argument(
            "-A",
            "--all-namespaces",
            action="store_true",
            help="every namespace (a NAMESPACE column comes first)",
        )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `pinnace` parser. Given the `command` a command line names (`_command_of`), only
    that command's parser is built: it is all that parses the line, and building every
    command's arguments was ~5 ms of every verb's start-up (gettext and a help formatter,
    with a terminal-size query, for each argument of ~20 commands)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="pinnace",
        description="A small container orchestrator speaking Kubernetes YAML.",
        formatter_class=_formatter,
    )
    parser.add_argument(
        "--master",
        help="master address HOST:PORT (default: $PINNACE_MASTER, else the config's server, "
        "else 127.0.0.1:7400)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="client credentials (default: $PINNACE_CONFIG, else ~/.pinnace/pinnace.conf, else "
        "for a master on this machine the pinnace.conf in its default data dir)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="talk plaintext, without credentials, to a loopback master started with --insecure",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, **kwargs: Any) -> _Arguments:
        if command is not None and name != command:
            return _NOT_BUILT
        return sub.add_parser(name, formatter_class=_formatter, **kwargs)

    m = add("master", help="run the control plane")
    m.add_argument("--listen", default="127.0.0.1:7400", help="HOST:PORT for the gRPC API")
    m.add_argument("--data-dir", default=_default_data_dir(), help="where the state lives")
    m.add_argument("--heartbeat-interval", type=float, default=1.0, metavar="SECONDS")
    m.add_argument(
        "--lease-seconds",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="a node without heartbeat this long is NotReady (an agent that hangs with its "
        "connection open; one whose session ends is NotReady 1 s after)",
    )
    m.add_argument(
        "--max-heartbeats-per-second",
        type=_rate,
        default=250.0,  # master.controllers.heartbeats (not imported: the CLI starts lean)
        metavar="RATE",
        help="beyond this many heartbeats a second from all nodes together, nodes are "
        "given a longer heartbeat interval and lease, by the same amount (1 s / 3 s up to "
        "250 nodes, 20 s / 22 s at 5,000; 0 never stretches), fewer while the master's "
        "loop runs late, and shorter ones again within their sessions when there is room; "
        "a dead or cut-off node is found by its session stream within seconds whatever "
        "the lease",
    )
    m.add_argument(
        "--max-joins-in-flight",
        type=_positive_int,
        default=64,
        metavar="N",
        help="joins in progress at once (a join lasts until the node registers); more "
        "are told to come back later, and their agents retry",
    )
    m.add_argument(
        "--session-ping-seconds",
        type=_interval,
        default=2.0,
        metavar="SECONDS",
        help="how often the master pings each agent's connection (gRPC keepalive); a "
        "cut-off node is found within this plus the answer timeout plus the 1 s session "
        "grace. Each ping costs the master CPU: 1,000 nodes at 1 s took 0.14 core",
    )
    m.add_argument(
        "--session-ping-answer-seconds",
        type=_interval,
        default=1.5,
        metavar="SECONDS",
        help="how long an agent's gRPC core has to answer a ping before its session ends "
        "(a frozen or cut-off agent is found within the ping interval plus this plus the 1 s "
        "session grace)",
    )
    m.add_argument(
        "--percentage-of-nodes-to-score",
        type=_percentage,
        default=0,
        metavar="PERCENT",
        help="the scheduler scores this share of the feasible nodes, as Kubernetes' "
        "percentageOfNodesToScore (0: its adaptive default, 50%% minus 1%% per 125 nodes, "
        "at least 5%%; every node below 100 nodes; 100: every node always)",
    )
    m.add_argument(
        "--pod-eviction-timeout",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how long a NotReady node keeps its pods before they are replaced",
    )
    m.add_argument(
        "--node-grace",
        type=_nonnegative,
        default=60.0,
        metavar="SECONDS",
        help="how long a silent node keeps its pods while believed alive: its agent said "
        "it will be back (a restart), or its pods still answer the master's probe",
    )
    m.add_argument(
        "--unhealthy-threshold",
        type=_fraction,
        default=0.5,
        metavar="FRACTION",
        help="pause evictions while more than this fraction of the nodes is silent at once "
        "(as Kubernetes' --unhealthy-zone-threshold; 1 never pauses)",
    )
    m.add_argument(
        "--lb-listen",
        default="127.0.0.1",
        metavar="IP",
        help="address the load balancer (HAProxy) binds service ports on",
    )
    m.add_argument(
        "--lb-advertise",
        default="",
        metavar="IP",
        help="address shown as a LoadBalancer service's EXTERNAL-IP (default: --lb-listen)",
    )
    m.add_argument(
        "--lb-internal-address",
        default="",
        metavar="IP",
        help="where ClusterIP services listen; every service's CLUSTER-IP (default: --lb-listen)",
    )
    m.add_argument(
        "--lb-port-offset",
        type=int,
        default=0,
        metavar="N",
        help="HAProxy listens on service port + N (e.g. to avoid privileged ports)",
    )
    m.add_argument("--no-lb", action="store_true", help="do not run a load balancer")
    m.add_argument(
        "--lb-address-pool",
        default="",
        metavar="ADDRESSES",
        help="each LoadBalancer service gets its own address from these: a range A-B, a "
        "CIDR A/N or a list A,B (loopback 127.0.0.x on a laptop); default: all share --lb-listen",
    )
    m.add_argument(
        "--ingress-http-port",
        type=_port_or_zero,
        default=8880,
        metavar="PORT",
        help="where Ingresses are served over HTTP, on --lb-listen, + --lb-port-offset "
        "(default 8880: no root needed; 0 turns it off); bound only while an Ingress exists",
    )
    m.add_argument(
        "--ingress-https-port",
        type=_port_or_zero,
        default=8443,
        metavar="PORT",
        help="where Ingresses with TLS are served over HTTPS, on --lb-listen, + "
        "--lb-port-offset (default 8443; 0 turns it off)",
    )
    m.add_argument(
        "--service-cidr",
        default="10.96.0.0/12",
        metavar="CIDR",
        help="where Services' cluster IPs come from (Kubernetes' "
        "--service-cluster-ip-range); every agent's node proxy answers on them",
    )
    m.add_argument(
        "--cluster-cidr",
        default="",
        metavar="CIDR",
        help="give every node a pod subnet of this IPv4 range (Kubernetes' --cluster-cidr "
        "with --allocate-node-cidrs): agents put their pods on a bridge of it and route the "
        "other nodes' subnets via their addresses (nodes on one L2 network), so pods reach "
        "each other at their own addresses (default: none; pods are reached at their "
        "node's published ports)",
    )
    m.add_argument(
        "--node-cidr-mask-size",
        type=int,
        default=24,
        metavar="BITS",
        help="the size of each node's pod subnet of --cluster-cidr (default 24: 254 pods)",
    )
    m.add_argument(
        "--service-node-port-range",
        default="30000-32767",
        metavar="FIRST-LAST",
        help="where NodePort and LoadBalancer Services' node ports come from (as in "
        "Kubernetes); every agent's node proxy answers on them on its node's address",
    )
    m.add_argument(
        "--stop-lb-on-exit",
        action="store_true",
        help="stop HAProxy when the master stops (by default it keeps serving and the next "
        "master adopts it)",
    )
    m.add_argument("--haproxy", default="haproxy", help="the haproxy binary")
    m.add_argument(
        "--metrics-listen",
        default=os.environ.get("PINNACE_METRICS_LISTEN", "127.0.0.1:9400"),
        metavar="HOST:PORT",
        help="where /metrics (Prometheus) is served; '' turns it off "
        "(default: $PINNACE_METRICS_LISTEN, else 127.0.0.1:9400)",
    )
    m.add_argument(
        "--insecure",
        dest="master_insecure",
        action="store_true",
        help="no TLS and no authorisation (a laptop only: refused unless --listen is loopback)",
    )
    m.add_argument(
        "--tls-san",
        action="append",
        default=[],
        metavar="NAME_OR_IP",
        help="another name the master's certificate is valid for (repeatable), e.g. `master`",
    )
    m.add_argument(
        "--node-cert-ttl",
        default="90d",
        metavar="DURATION",
        help="lifetime of node certificates (agents renew at 2/3 of it; default 90d)",
    )
    m.add_argument(
        "--api-listen",
        default="127.0.0.1:6443",
        metavar="HOST:PORT",
        help="HOST:PORT for the Kubernetes API (HTTPS; kubectl); empty: do not serve it",
    )
    m.add_argument(
        "--store",
        choices=["sqlite", "etcd"],
        default="sqlite",
        help="where the cluster's state lives: sqlite (in --data-dir, the default) or etcd",
    )
    m.add_argument(
        "--etcd-endpoints",
        metavar="URLS",
        help="--store etcd: the etcd members, comma separated (https://10.0.0.1:2379,...)",
    )
    m.add_argument(
        "--etcd-prefix", default="/pinnace/", help="--store etcd: the key prefix of this cluster"
    )
    m.add_argument("--etcd-cafile", metavar="FILE", help="--store etcd: CA of etcd's certificate")
    m.add_argument("--etcd-certfile", metavar="FILE", help="--store etcd: client certificate")
    m.add_argument("--etcd-keyfile", metavar="FILE", help="--store etcd: its private key")
    m.add_argument(
        "--etcd-timeout",
        metavar="DURATION",
        help="--store etcd: how long one etcd request may take, across its members, before "
        "it fails (default 5s; etcd without quorum answers nothing)",
    )
    m.add_argument(
        "--leader-elect",
        action="store_true",
        help="--store etcd: run as one of several masters; the elected leader runs the "
        "controllers, the others serve reads and send writers to it",
    )
    m.add_argument(
        "--leader-lease",
        metavar="DURATION",
        help="--leader-elect: the leader's etcd lease, renewed every quarter of it; a killed "
        "leader is replaced within it plus etcd's 0.5 s expiry check (whole seconds, default "
        "1s; etcd grants no less than 1.5 x its --election-timeout: run etcd with "
        "--heartbeat-interval 50 --election-timeout 500)",
    )
    m.add_argument(
        "--name", default="", help="this master's name among several (default: HOSTNAME-PORT)"
    )
    m.add_argument(
        "--advertise-address",
        default="",
        metavar="HOST",
        help="where other masters, agents and clients reach this master (the leader hint, "
        "`get masters`, pinnace.conf; added to its certificate); default: the --listen host, "
        "or this machine's first non-loopback address when --listen is a wildcard",
    )
    m.add_argument(
        "--cluster-secret-file",
        metavar="FILE",
        help="--store etcd: the secret (>= 16 characters) that seals the cluster's CA, admin "
        "credentials and Secrets key in etcd; the same file for every master (default: "
        "DATA_DIR/cluster-secret, made by the cluster's first master)",
    )
    m.add_argument("--log-level", default="INFO")

    add("agent", help="run the node agent (see `pinnace agent --help`)", add_help=False)

    lb = add("lb", help="the load balancer (HAProxy) a master left running")
    lb.add_argument("action", choices=["stop"], help="stop: end it (services stop answering)")
    lb.add_argument("--data-dir", default=_default_data_dir(), help="the master's --data-dir")

    t = add("token", help="create, list or revoke join tokens for agents")
    t.add_argument("action", choices=["create", "list", "revoke"])
    t.add_argument("id", nargs="?", default="", metavar="TOKEN-ID", help="revoke: the token")
    t.add_argument("--ttl", help="create: lifetime like 30m, 24h, 7d; 0 = never (default 24h)")
    t.add_argument("--description", default="", help="create: a note shown by `token list`")

    k = add("kubeconfig", help="print a kubeconfig for kubectl and Kubernetes clients")
    k.add_argument("--server", help="the Kubernetes API URL (default: the one the master wrote)")

    lg = add("logs", help="print a pod's container log (from its node)")
    lg.add_argument("pod", help="POD (or pod/POD)")
    lg.add_argument("-c", "--container", default="", help="the container (default: the first)")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    lg.add_argument("--tail", type=int, default=-1, metavar="N", help="only the last N lines")
    lg.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    lg.add_argument(
        "-p", "--previous", action="store_true", help="the previous (crashed) container's log"
    )
    _namespace_flags(lg)

    ds = add("describe", help="show an object in detail, with its events")
    ds.add_argument("kind", help="pod, deployment, statefulset, service, node, pvc, secret...")
    ds.add_argument("name", nargs="?", help="NAME (or give KIND/NAME); none: all of the kind")
    _namespace_flags(ds)

    ex = add("exec", help="run a command in a pod's container (through its node)")
    ex.add_argument("pod", help="POD (or pod/POD)")
    ex.add_argument("argv", nargs="*", metavar="-- COMMAND [ARG...]", help="the command to run")
    ex.add_argument("-c", "--container", default="", help="the container (default: the first)")
    ex.add_argument("-i", "--stdin", action="store_true", help="pass this stdin to the command")
    ex.add_argument("-t", "--tty", action="store_true", help="give the command a terminal")
    _namespace_flags(ex)

    at = add("attach", help="attach to a container's main process (through its node)")
    at.add_argument("pod", help="POD (or pod/POD)")
    at.add_argument("-c", "--container", default="", help="the container (default: the first)")
    at.add_argument(
        "-i", "--stdin", action="store_true", help="pass this stdin (the container: stdin: true)"
    )
    at.add_argument("-t", "--tty", action="store_true", help="the container has a terminal")
    _namespace_flags(at)

    tp = add("top", help="CPU and memory of nodes or pods (from the agents)")
    tp.add_argument(
        "kind", choices=["nodes", "node", "no", "pods", "pod", "po"], help="nodes or pods"
    )

    a = add("apply", help="create or update objects from manifests")
    a.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        help="a file, a directory of .yaml/.yml/.json files, or - for stdin",
    )
    a.add_argument("--dry-run", action="store_true", help="validate only")
    a.add_argument(
        "-R",
        "--recursive",
        action="store_true",
        help="also the manifests in the subdirectories of a -f directory",
    )
    _namespace_flags(a)

    cr = add("create", help="create a namespace (as kubectl create namespace)")
    cr.add_argument("kind", choices=["namespace", "ns"])
    cr.add_argument("name")
    cr.add_argument("--dry-run", action="store_true", help="validate only")

    g = add("get", help="list objects")
    g.add_argument("kind", help="pods|deployments|services|nodes|events (or KIND/NAME)")
    g.add_argument("name", nargs="?")
    g.add_argument("-o", "--output", choices=["wide", "json", "yaml", "name"])
    g.add_argument("-l", "--selector", help="label selector key=value[,key=value]")
    g.add_argument("-w", "--watch", action="store_true", help="after listing, follow changes")
    g.add_argument(
        "--show-managed-fields",
        action="store_true",
        help="with -o json|yaml, keep metadata.managedFields (who set which fields)",
    )
    _namespace_flags(g, all_namespaces=True)

    d = add("delete", help="delete objects")
    d.add_argument("kind", nargs="?", help="KIND or KIND/NAME")
    d.add_argument("name", nargs="?")
    d.add_argument("-f", "--filename", action="append", help="delete what the manifests declare")
    d.add_argument(
        "-R",
        "--recursive",
        action="store_true",
        help="also the manifests in the subdirectories of a -f directory",
    )
    d.add_argument(
        "--grace-period",
        type=int,
        default=-1,
        metavar="SECONDS",
        help="pods: seconds between SIGTERM and SIGKILL (default: the pod's own)",
    )
    _namespace_flags(d)

    s = add("scale", help="set a deployment's replicas")
    s.add_argument("kind", help="deployment (or deployment/NAME)")
    s.add_argument("name", nargs="?")
    s.add_argument("--replicas", type=int, required=True)
    _namespace_flags(s)

    for verb, what in (("cordon", "mark a node unschedulable"), ("uncordon", "undo cordon")):
        c = add(verb, help=what)
        c.add_argument("node")
    dr = add("drain", help="cordon a node and move its pods elsewhere, keeping them up")
    dr.add_argument("node")
    dr.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="give up after this long (0: wait forever)",
    )

    r = add("rollout", help="follow, list or undo a deployment's rollouts")
    r.add_argument("action", choices=["status", "history", "undo"])
    r.add_argument("kind", help="deployment/NAME (or deployment NAME)")
    r.add_argument("name", nargs="?")
    r.add_argument("--to-revision", type=int, default=0, help="undo: the revision to go back to")
    r.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="status: give up after this long (0: wait forever)",
    )
    _namespace_flags(r)
    return parser


def _run_master(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from master.server import MasterConfig, run_master

    if args.ingress_http_port and args.ingress_http_port == args.ingress_https_port:
        raise CliError(
            f"pinnace master: --ingress-http-port and --ingress-https-port are both "
            f"{args.ingress_http_port}; give them different ports (or 0 to turn one off)"
        )
    for flag, port in (
        ("--ingress-http-port", args.ingress_http_port),
        ("--ingress-https-port", args.ingress_https_port),
    ):
        if port and not 1 <= port + args.lb_port_offset <= 65535:
            raise CliError(
                f"pinnace master: {flag} {port} shifted by --lb-port-offset "
                f"{args.lb_port_offset} is {port + args.lb_port_offset}, not a port; give "
                f"{flag} a port that stays in 1-65535 (or 0 to turn it off)"
            )
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_master(
        MasterConfig(
            listen=args.listen,
            data_dir=Path(args.data_dir),
            heartbeat_interval=args.heartbeat_interval,
            lease_seconds=args.lease_seconds,
            max_heartbeats_per_second=args.max_heartbeats_per_second,
            max_joins_in_flight=args.max_joins_in_flight,
            session_ping_seconds=args.session_ping_seconds,
            session_ping_answer_seconds=args.session_ping_answer_seconds,
            percentage_of_nodes_to_score=args.percentage_of_nodes_to_score,
            eviction_timeout=args.pod_eviction_timeout,
            node_grace=args.node_grace,
            unhealthy_threshold=args.unhealthy_threshold,
            lb_enabled=not args.no_lb,
            lb_listen=args.lb_listen,
            lb_advertise=args.lb_advertise,
            lb_internal=args.lb_internal_address,
            lb_port_offset=args.lb_port_offset,
            lb_stop_on_exit=args.stop_lb_on_exit,
            lb_address_pool=_address_pool(args.lb_address_pool),
            ingress_http_port=args.ingress_http_port,
            ingress_https_port=args.ingress_https_port,
            service_cidr=_service_cidr(args.service_cidr),
            cluster_cidr=_cluster_cidr(args.cluster_cidr, args.node_cidr_mask_size),
            node_cidr_mask=args.node_cidr_mask_size,
            node_port_range=_node_port_range(args.service_node_port_range),
            haproxy_bin=args.haproxy,
            metrics_listen=_metrics_listen(args.metrics_listen),
            insecure=args.master_insecure,
            tls_sans=tuple(args.tls_san),
            node_cert_ttl=_duration("--node-cert-ttl", args.node_cert_ttl),
            api_listen=args.api_listen,
            etcd=_etcd_settings(args),
            leader_elect=args.leader_elect,
            leader_lease=_leader_lease(args),
            advertise_address=args.advertise_address,
            name=args.name,
            cluster_secret_file=(
                Path(args.cluster_secret_file) if args.cluster_secret_file else None
            ),
        ),
        bounded_exit=True,
    )


def _address_pool(text: str) -> tuple[str, ...]:
    if not text:
        return ()
    from master.lb.pool import parse_pool

    try:
        return parse_pool(text)
    except ValueError as e:
        raise CliError(f"pinnace master: --lb-address-pool: {e}") from None


def _service_cidr(text: str) -> str:
    from master.app.clusterip import ClusterIpError, parse_service_cidr

    try:
        return str(parse_service_cidr(text))
    except ClusterIpError as e:
        raise CliError(f"pinnace master: {e}") from None


def _cluster_cidr(text: str, mask: int) -> str:
    if not text:
        return ""
    from master.app.podcidr import PodCidrError, parse_cluster_cidr

    try:
        return str(parse_cluster_cidr(text, mask))
    except PodCidrError as e:
        raise CliError(f"pinnace master: {e}") from None


def _node_port_range(text: str) -> tuple[int, int]:
    from master.app.nodeport import NodePortError, parse_port_range

    try:
        ports = parse_port_range(text)
    except NodePortError as e:
        raise CliError(f"pinnace master: {e}") from None
    return ports.first, ports.last


def _run_lb(action: str, data_dir: str) -> int:
    from pathlib import Path

    from master.lb.process import stop_running

    # action is "stop" (argparse allows nothing else).
    directory = Path(data_dir)
    pid = stop_running(directory / "lb")
    if pid is None:
        print(f"no load balancer is running for {directory}")
    else:
        print(f"load balancer (HAProxy pid {pid}) stopped")
    return 0


def _etcd_settings(args: argparse.Namespace) -> EtcdSettings | None:
    from master.store.etcd_client import EtcdSettings, parse_endpoints

    """--store etcd's settings, None for sqlite; a misplaced or missing flag is an error."""
    etcd_flags = {
        "--etcd-endpoints": args.etcd_endpoints,
        "--etcd-cafile": args.etcd_cafile,
        "--etcd-certfile": args.etcd_certfile,
        "--etcd-keyfile": args.etcd_keyfile,
        "--cluster-secret-file": args.cluster_secret_file,
        "--etcd-timeout": args.etcd_timeout,
    }
    if args.store != "etcd":
        etcd_flags["--leader-elect"] = args.leader_elect
        given = [flag for flag, value in etcd_flags.items() if value]
        if given:
            raise CliError(f"pinnace master: {given[0]} needs --store etcd")
        return None
    if not args.etcd_endpoints:
        raise CliError("pinnace master: --store etcd needs --etcd-endpoints URLS")
    try:
        endpoints = parse_endpoints(args.etcd_endpoints)
    except ValueError as e:
        raise CliError(f"pinnace master: --etcd-endpoints: {e}") from None
    if not args.etcd_prefix.startswith("/"):
        raise CliError(
            f"pinnace master: --etcd-prefix: must start with '/', got {args.etcd_prefix!r}"
        )

    from pathlib import Path

    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    timeout = _duration("--etcd-timeout", args.etcd_timeout) if args.etcd_timeout else None
    return EtcdSettings(
        endpoints,
        prefix=args.etcd_prefix,
        cafile=path(args.etcd_cafile),
        certfile=path(args.etcd_certfile),
        keyfile=path(args.etcd_keyfile),
        **({"timeout": timeout} if timeout is not None else {}),
    )


def _leader_lease(args: argparse.Namespace) -> float:
    """--leader-lease: whole seconds (etcd's lease TTLs are), only with --leader-elect."""
    if not args.leader_lease:
        return 1.0
    if not args.leader_elect:
        raise CliError("pinnace master: --leader-lease needs --leader-elect")
    seconds = _duration("--leader-lease", args.leader_lease)
    if seconds != int(seconds):
        raise CliError(
            f"pinnace master: --leader-lease: etcd's leases last whole seconds, "
            f"got {args.leader_lease!r} (try 1s or 2s)"
        )
    return seconds


def _metrics_listen(text: str) -> str:
    from kernel.listen import parse_listen

    try:
        parse_listen(text)
    except ValueError as e:
        raise CliError(f"pinnace master: {e}") from None
    return text


def _duration(flag: str, text: str) -> float:
    from master.pki.tokens import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise CliError(f"pinnace master: {flag}: {e}") from None
    if seconds < 1:
        raise CliError(f"pinnace master: {flag}: must be at least 1s, got {text!r}")
    return seconds


def _ns(args: argparse.Namespace) -> str:
    return str(args.namespace or "default")


def split_exec_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """`exec POD ... -- CMD ARGS`: everything after the first `--` following `exec` is the
    command's, flags included (argparse would take `-c` or `-i` there for its own)."""
    if "exec" not in argv:
        return argv, []
    start = argv.index("exec")
    if "--" not in argv[start:]:
        return argv, []
    cut = argv.index("--", start)
    return argv[:cut], argv[cut + 1 :]


def _run_command(args: argparse.Namespace, address: str, command_argv: list[str]) -> int:
    """The kubectl-style verbs; each imports only what it uses."""
    command = args.command
    if command == "token":
        from master.cli.token import run_token

        return run_token(address, args.action, args.ttl, args.description, args.id)
    if command == "kubeconfig":
        from master.cli.kubeconfig import run_kubeconfig

        return run_kubeconfig(address, args.server)
    if command == "logs":
        from master.cli.logs import run_logs

        return run_logs(
            address,
            args.pod,
            args.container,
            args.follow,
            args.tail,
            args.timestamps,
            args.previous,
            _ns(args),
        )
    if command == "describe":
        from master.cli.describe import run_describe

        return run_describe(address, args.kind, args.name, _ns(args))
    if command == "exec":
        from master.cli.exec import run_exec

        return run_exec(
            address, args.pod, args.container, [*args.argv, *command_argv], args.stdin,
            args.tty, _ns(args),
        )  # fmt: skip
    if command == "attach":
        from master.cli.exec import run_exec

        return run_exec(
            address, args.pod, args.container, [], args.stdin, args.tty, _ns(args),
            attach=True,
        )  # fmt: skip
    if command == "top":
        from master.cli.top import run_top

        return run_top(address, "nodes" if args.kind in ("nodes", "node", "no") else "pods")
    if command in ("cordon", "uncordon", "drain"):
        from master.cli.drain import run_cordon, run_drain

        if command == "drain":
            return run_drain(address, args.node, args.timeout)
        return run_cordon(address, args.node, command == "cordon")
    if command == "rollout":
        from master.cli.rollout import run_rollout

        return run_rollout(
            address, args.action, args.kind, args.name, args.to_revision, args.timeout,
            _ns(args),
        )  # fmt: skip
    if command == "apply":
        from master.cli.apply import run_apply

        return run_apply(address, args.filename, args.dry_run, args.recursive, args.namespace)
    from master.cli import commands

    if command == "create":
        return commands.run_create_namespace(address, args.name, args.dry_run)
    if command == "get":
        return commands.run_get(
            address,
            args.kind,
            args.name,
            args.output,
            args.selector,
            args.watch,
            _ns(args),
            args.all_namespaces,
            args.show_managed_fields,
        )
    if command == "delete":
        return commands.run_delete(
            address,
            args.kind,
            args.name,
            args.filename,
            args.recursive,
            args.grace_period,
            args.namespace,
        )
    if command == "scale":
        return commands.run_scale(address, args.kind, args.name, args.replicas, _ns(args))
    return 2


def main(argv: Sequence[str] | None = None, *, exit_after_verb: bool = False) -> int:
    """Runs one command; its exit status. With `exit_after_verb` (`run`), a kubectl-style
    verb ends the process itself once its output is flushed (see the module's docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "agent":
        # The agent is its own program; exec keeps signals and PIDs simple.
        os.execv(sys.executable, [sys.executable, "-m", "agent", *argv[1:]])
    argv, command_argv = split_exec_command(argv)
    # argparse's Namespace or apply_line's: both are read by attribute (argparse's as Any).
    args: Any = apply_line(argv) or build_parser(_command_of(argv)).parse_args(argv)
    try:
        if args.command == "master":
            return _run_master(args)
        if args.command == "lb":
            return _run_lb(args.action, args.data_dir)
        if exit_after_verb:
            _collect_later(args.command)
        # From config, not client.py: that imports grpcio, which `apply` does without.
        from master.cli.config import CredentialsError, master_address

        select_credentials(args.config, args.insecure)
        try:
            address = master_address(args.master)
        except CredentialsError as e:
            raise CliError(str(e)) from None
        code = _run_command(args, address, command_argv)
    except CliError as e:
        print(str(e), file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    if exit_after_verb and args.command not in ("master", "lb"):
        _exit_without_teardown(code)
    return code


def _collect_later(command: str) -> None:
    """A verb starts without the cyclic garbage collector: its imports (gRPC and ~200
    modules) made it run over and over, ~5 ms of the ~110 ms of CPU before `apply` sent
    (issue 15). Start-up leaves little garbage; a verb still running after a second
    (`get -w`, `logs -f`, `exec`) gets the collector back. `apply` sends one request and
    ends, so it goes without the collector throughout, and without the timer's thread
    and the threading module it would import first."""
    import gc

    gc.disable()
    if command == "apply":
        return
    import threading

    timer = threading.Timer(COLLECTOR_OFF_SECONDS, gc.enable)
    timer.daemon = True
    timer.start()


def _exit_without_teardown(code: int) -> NoReturn:
    """Flushes what the command wrote, then ends the process at once."""
    # Logging's handlers flush here, when anything loaded it (gRPC does; `apply` does not).
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # A reader gone (`| head`) loses nothing more; the command's status stands. (No
        # contextlib.suppress: contextlib imports functools and collections, ~1 ms of
        # `apply`'s start, issue 15.)
        try:  # noqa: SIM105 (contextlib, above)
            stream.flush()
        except BrokenPipeError:
            pass
    os._exit(code)


def run() -> NoReturn:
    """The `pinnace` program."""
    sys.exit(main(exit_after_verb=True))


if __name__ == "__main__":
    run()
