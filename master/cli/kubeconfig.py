"""`pinnace kubeconfig`: a kubeconfig for kubectl and Kubernetes clients, from pinnace.conf.

The master writes its Kubernetes API URL into the admin's pinnace.conf
(`api-server`) beside the CA and the admin certificate; this command prints
the same credentials in kubeconfig form (base64 data fields, one cluster, one
user, one context named `pinnace`), so

    kubectl --kubeconfig <(pinnace kubeconfig) get pods

and `kubernetes.config.load_kube_config(path)` work unchanged. `--server URL`
overrides the address (a master behind a different name).
"""

from __future__ import annotations

import base64

import yaml

from master.cli.client import CliError
from master.cli.config import CredentialsError, credentials_for, no_credentials
from master.pki.clientconfig import ClientConfig


def render_kubeconfig(config: ClientConfig, server: str) -> str:
    def b64(pem: bytes) -> str:
        return base64.b64encode(pem.strip() + b"\n").decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "pinnace",
                "cluster": {"server": server, "certificate-authority-data": b64(config.ca_pem)},
            }
        ],
        "users": [
            {
                "name": "pinnace-admin",
                "user": {
                    "client-certificate-data": b64(config.cert_pem),
                    "client-key-data": b64(config.key_pem),
                },
            }
        ],
        "contexts": [
            {
                "name": "pinnace",
                "context": {"cluster": "pinnace", "user": "pinnace-admin", "namespace": "default"},
            }
        ],
        "current-context": "pinnace",
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def run_kubeconfig(address: str, server: str | None) -> int:
    try:
        creds = credentials_for(address)
    except CredentialsError as e:
        raise CliError(str(e)) from None
    if creds.insecure:
        raise CliError(
            "error: a kubeconfig carries the cluster's credentials; an --insecure master has "
            "none (its API is plain HTTP on loopback: kubectl -s http://127.0.0.1:PORT)"
        )
    if creds.config is None:
        raise CliError(no_credentials(address))
    url = server or creds.config.api_server
    if not url:
        raise CliError(
            f"error: {creds.source} names no Kubernetes API (the master writes api-server "
            f"when it serves one; restart it, or pass --server https://HOST:PORT)"
        )
    print(render_kubeconfig(creds.config, url), end="")
    return 0
