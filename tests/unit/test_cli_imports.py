"""`pinnace get pods` loads only what it uses: no cryptography, store, manifest model or YAML
emitter at start-up (each was a slice of the CLI's second-long start on a loaded machine)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from master.pki.clientconfig import ClientConfig, render_client_config
from tests.support import REPO

# Modules the kubectl-style verbs must not import just to start (the master, `apply -o yaml`,
# `token` and `kubeconfig` import them when they run).
HEAVY = (
    "cryptography",
    "master.model",
    "master.manifest",
    "master.store",
    "master.controllers",
    "master.pki.bootstrap",
    "aetcd",
    "docker",
)


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_get_command_modules_load_without_heavy_dependencies() -> None:
    loaded = _loaded_after(
        "import master.cli.main, master.cli.commands, master.cli.describe, master.cli.top"
    )

    assert "grpc" in loaded  # the probe sees imports at all
    assert _heavy(loaded) == []


def test_the_master_command_still_loads_what_it_needs() -> None:
    # The lazy imports must resolve: the master's own modules import from where they moved.
    loaded = _loaded_after(
        "import master.cli.main; import master.server; import master.pki.bootstrap"
    )

    assert {"cryptography", "master.model", "master.pki.bootstrap"} <= loaded


def test_apply_sends_without_loading_what_it_does_not_use(tmp_path: Path) -> None:
    # Up to the moment `pinnace apply` sends, on the way to a running pod (issue 15): no
    # YAML (pinnace.conf as the master writes it is read without it), no table renderer,
    # no protobuf.
    pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    conf = tmp_path / "pinnace.conf"
    conf.write_text(render_client_config(ClientConfig("127.0.0.1:7400", pem, pem, pem)))
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
    probe = (
        "import json, sys\n"
        "from master.cli import h2_client\n"
        "import gc\n"
        "def sent(self, address, path, message, timeout):\n"
        "    print(json.dumps([gc.isenabled(), sorted(sys.modules)]))\n"
        "    raise SystemExit(0)\n"
        "h2_client.H2Client._call_one = sent\n"
        "from master.cli.main import main\n"
        f"main(['--config', {str(conf)!r}, 'apply', '-f', {str(manifest)!r}],\n"
        "     exit_after_verb=True)\n"
        "raise SystemExit('apply returned without sending')\n"
    )

    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    collecting, modules = json.loads(out.splitlines()[-1])
    loaded = set(modules)

    assert "master.cli.apply_wire" in loaded  # the probe saw the request being sent
    assert _heavy(loaded) == []
    assert {"yaml", "master.api.tables"} & loaded == set()
    # Nor the protobuf runtime and the service's descriptors: apply_wire writes the request.
    assert sorted(m for m in loaded if m.startswith(("google.protobuf", "protos."))) == []
    # Nor grpcio (master/cli/h2_client.py sends the call), nor logging, which only gRPC used.
    assert sorted(m for m in loaded if m == "grpc" or m.startswith("grpc.")) == []
    assert "logging" not in loaded
    # Nor shutil (argparse's help formatter imports it for the terminal's width).
    assert "shutil" not in loaded
    # The `pinnace` program's verbs start without the cyclic garbage collector.
    assert collecting is False


# Standard modules `apply` does without on its way to the send (issue 15: apply -> 3 running
# within 1.1x of `docker run`); each was a few ms of the CLI's CPU before it sent.
APPLY_DOES_WITHOUT = (
    "typing",  # kernel/records.py gives the records' class syntax without it
    "pathlib",  # master/cli/apply.py and config.py use os.path
    "urllib",  # pathlib's, and h2_unary's for a failed call's message only
    "ipaddress",  # is_loopback answers 127.0.0.1 and localhost without it
    "threading",  # the collector's timer: `apply` goes without the collector throughout
    "encodings.idna",  # the master's name goes to getaddrinfo and TLS as ASCII bytes
    "argparse",  # master/cli/main.py's apply_line reads a plain `apply` line itself
    "gettext",  # argparse's
    "locale",  # gettext's, at the parser's making
    # master/cli/bare_tls.py connects on _socket and _ssl: the socket and ssl modules build
    # ~20 enum classes at import (with selectors, base64, struct), ~15 ms of CPU
    "socket",
    "ssl",
    "enum",
    "re",  # master/pki/clientconfig.py reads pinnace.conf with str methods
    "contextlib",  # with functools: main's one suppress is a try
    "functools",
)


def test_apply_reaches_its_send_without_argparse_typing_pathlib_socket_or_ssl(
    tmp_path: Path,
) -> None:
    # A real `apply --insecure` against a listening socket, up to the moment its request is
    # written (Exchange.opening, after the connect). `-S`: no site, so what is loaded is the
    # CLI's own doing and not this venv's (an editable install's finder imports pathlib).
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
    # The listening end is this test's: the probe imports nothing of its own to make it.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    probe = (
        "import os, sys\n"
        "from master.cli import h2_unary\n"
        "def opening(self):\n"
        "    loaded = sorted(sys.modules)\n"
        "    import json\n"
        "    print(json.dumps(loaded), flush=True)\n"
        "    os._exit(0)\n"
        "h2_unary.Exchange.opening = opening\n"
        "from master.cli.main import main\n"
        f"address = {address!r}\n"
        f"main(['--master', address, '--insecure', 'apply', '-f', {str(manifest)!r}],\n"
        "     exit_after_verb=True)\n"
        "raise SystemExit('apply returned without sending')\n"
    )

    try:
        out = subprocess.run(
            [sys.executable, "-S", "-c", probe],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        server.close()
    loaded = set(json.loads(out.splitlines()[-1]))

    assert {"master.cli.h2_unary", "master.cli.apply_wire", "_socket", "_ssl"} <= loaded
    assert sorted(m for m in loaded if m in APPLY_DOES_WITHOUT or m.startswith("urllib.")) == []
