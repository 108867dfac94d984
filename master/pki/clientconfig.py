"""pinnace.conf: a client's credentials for one master (pinnace's kubeconfig).

A small YAML document, written 0600 by the master for its admin
(`<data-dir>/pinnace.conf`) and read by the CLI:

    apiVersion: pinnace/v1
    kind: Config
    server: 127.0.0.1:7400          # HOST:PORT of the master
    api-server: https://127.0.0.1:6443  # its Kubernetes API, when served (`pinnace kubeconfig`)
    certificate-authority-data: |   # the cluster CA (PEM): who the master must be
      -----BEGIN CERTIFICATE-----
    client-certificate-data: |      # who we are (PEM, signed by the cluster CA)
      -----BEGIN CERTIFICATE-----
    client-key-data: |              # our private key (PEM)
      -----BEGIN PRIVATE KEY-----

PEM is kept as text (not base64 as kubeconfig does) so the file reads plainly.
Parsing is strict: a file that is not such a document is one sentence naming it.

Every CLI command reads this file before it sends anything, and importing PyYAML alone
was ~13 ms of the CLI's ~110 ms of start-up CPU. So a file laid out exactly as
`render_client_config` writes it is read line by line (`_read_rendered`), and any other
text (comments, other quoting, a hand-edited layout) goes to YAML as before: the fast
path takes only what it reads exactly as YAML does.
"""

from __future__ import annotations

import os

from kernel.records import NamedTuple

# mypy reads any constant named TYPE_CHECKING as typing's (kernel/records.py says why).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The admin's file in the master's data dir. Defined here, not with the master's PKI, so
# the CLI reads credentials without importing cryptography (a third of its start-up).
CONFIG_NAME = "pinnace.conf"
MAX_CONFIG_BYTES = 64 * 1024
FIELDS = ("certificate-authority-data", "client-certificate-data", "client-key-data")
# The lines render_client_config writes, and only those: printable ASCII throughout (YAML
# reads other characters, U+2028 say, as line breaks); the two fixed plain scalars; one of
# the known keys with a double-quoted value without escapes, or opening a literal block;
# a block line (two spaces of indentation, then text that starts with neither space nor
# tab). A key YAML reads otherwise (`on:` is True) never gets here. Read with str methods,
# not regular expressions: `re` (with enum) was ~3 ms of every command's start (issue 15).
_FIXED = frozenset({"apiVersion: pinnace/v1", "kind: Config"})
_KEYS = frozenset({"server", "api-server", *FIELDS})


def _printable_ascii(text: str) -> bool:
    """Only characters from space to tilde, and newlines."""
    return text.isascii() and text.replace("\n", "").isprintable()


def _quoted(line: str) -> tuple[str, str] | None:
    """(key, value) of `KEY: "VALUE"`, VALUE without a quote or backslash."""
    key, sep, rest = line.partition(': "')
    if not sep or key not in _KEYS or not rest.endswith('"'):
        return None
    value = rest[:-1]
    if '"' in value or "\\" in value:
        return None
    return key, value


def _block_start(line: str) -> str | None:
    """KEY of `KEY: |`."""
    key = line.removesuffix(": |")
    return key if key != line and key in _KEYS else None


def _block_line(line: str) -> bool:
    """Two spaces, then text that starts with neither space nor tab and has no tab."""
    return len(line) > 2 and line[:2] == "  " and line[2] not in " \t" and "\t" not in line


# The loopback addresses a command line names almost always: answered without the
# ipaddress module, which `pinnace apply` would import for nothing else (issue 15).
_COMMON_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    if host in _COMMON_LOOPBACK:
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    """A credentials file that cannot be used; the message names it and says why."""


# A NamedTuple, not a dataclass, as the CLI's other records: making a dataclass at import
# (slots, frozen) costs ~0.5-2 ms each, on every command's start-up.
class ClientConfig(NamedTuple):
    server: str
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    # The master's Kubernetes API URL; empty when it serves none.
    api_server: str = ""


def render_client_config(config: ClientConfig) -> str:
    import json  # the master writes this file; the CLI only reads it

    # Written by hand so PEM comes out as readable literal blocks.
    def block(pem: bytes) -> str:
        return "|\n" + "".join(f"  {line}\n" for line in pem.decode().strip().splitlines())

    return (
        "apiVersion: pinnace/v1\n"
        "kind: Config\n"
        f"server: {json.dumps(config.server)}\n"
        + (f"api-server: {json.dumps(config.api_server)}\n" if config.api_server else "")
        + f"certificate-authority-data: {block(config.ca_pem)}"
        f"client-certificate-data: {block(config.cert_pem)}"
        f"client-key-data: {block(config.key_pem)}"
    )


def _read_rendered(text: str) -> dict[str, str] | None:
    """The document as yaml.safe_load reads it, when `text` is laid out exactly as
    render_client_config writes it; None for any other text (YAML then decides)."""
    if not text.endswith("\n") or not _printable_ascii(text):
        return None
    doc: dict[str, str] = {}
    lines = text[:-1].split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line in _FIXED:
            key, _, value = line.partition(": ")
        elif quoted := _quoted(line):
            key, value = quoted
        elif block := _block_start(line):
            # A literal block, clipped: each line less its indentation, one newline after
            # the last. Every line indented by exactly two spaces, none empty.
            key, start = block, i
            while i < len(lines) and _block_line(lines[i]):
                i += 1
            if i == start:
                return None
            value = "".join(f"{body[2:]}\n" for body in lines[start:i])
        else:
            return None
        if key in doc:
            return None
        doc[key] = value
    return doc


def _load_yaml(text: str, source: str) -> Any:
    import yaml  # only for a file not laid out as render_client_config writes it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{source}: not a pinnace client config (not YAML)") from None


def parse_client_config(text: str, source: str) -> ClientConfig:
    doc = _read_rendered(text)
    if doc is None:
        doc = _load_yaml(text, source)
    if not isinstance(doc, dict) or doc.get("kind") != "Config":
        raise ConfigError(f"{source}: not a pinnace client config (expected kind: Config)")
    values: dict[str, str] = {}
    for key in ("server", *FIELDS):
        value = doc.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{source}: {key} is missing")
        values[key] = value
    for key in FIELDS:
        if "-----BEGIN " not in values[key]:
            raise ConfigError(f"{source}: {key} is not PEM")
    return ClientConfig(
        server=values["server"].strip(),
        ca_pem=values["certificate-authority-data"].encode(),
        cert_pem=values["client-certificate-data"].encode(),
        key_pem=values["client-key-data"].encode(),
        api_server=str(doc.get("api-server") or "").strip(),
    )


def read_client_config(path: str | os.PathLike[str]) -> ClientConfig:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    return parse_client_config(data.decode(errors="replace"), str(path))
