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
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

# The admin's file in the master's data dir. Defined here, not with the master's PKI, so
# the CLI reads credentials without importing cryptography (a third of its start-up).
CONFIG_NAME = "pinnace.conf"
MAX_CONFIG_BYTES = 64 * 1024
FIELDS = ("certificate-authority-data", "client-certificate-data", "client-key-data")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    """A credentials file that cannot be used; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    server: str
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    # The master's Kubernetes API URL; empty when it serves none.
    api_server: str = ""


def render_client_config(config: ClientConfig) -> str:
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


def parse_client_config(text: str, source: str) -> ClientConfig:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{source}: not a pinnace client config (not YAML)") from None
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


def read_client_config(path: Path) -> ClientConfig:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    return parse_client_config(data.decode(errors="replace"), str(path))
