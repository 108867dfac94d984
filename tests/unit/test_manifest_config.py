"""ConfigMap, Secret and ServiceAccount manifests (issue 11): fields, checks, and that no
error or warning ever shows a Secret's value."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from master.manifest import ManifestError
from master.model import ConfigMap, Secret, ServiceAccount
from tests.unit.test_manifest_support import parse

SECRET_VALUE = "hunter2-do-not-print"


def _cm(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, **fields}


def _secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, **fields}


def test_config_map_keeps_data_and_binary_data() -> None:
    (cm,) = parse(_cm(data={"mode": "prod", "empty": None}, binaryData={"b": "AAE="})).objects

    assert cm == ConfigMap(cm.meta, {"mode": "prod", "empty": ""}, {"b": "AAE="})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"data": {"bad/key": "x"}}, 'data["bad/key"]: a key must consist of alphanumeric'),
        ({"data": {"port": 80}}, "data.port: must be a string (quote numbers and booleans)"),
        ({"data": {"k": "x"}, "binaryData": {"k": "AA=="}}, "binaryData.k: is also a key of data"),
        ({"binaryData": {"b": "not base64!"}}, "binaryData.b: must be base64-encoded"),
        ({"immutable": "yes"}, "immutable: must be true or false"),
    ],
)
def test_config_map_mistakes_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse(_cm(**fields))

    assert message in str(info.value)


def test_secret_folds_string_data_into_base64_data_and_it_wins() -> None:
    encoded = base64.b64encode(b"old").decode()
    doc = _secret(data={"user": encoded, "password": encoded}, stringData={"password": "new"})

    (secret,) = parse(doc).objects

    assert isinstance(secret, Secret)
    assert secret.type == "Opaque"
    assert secret.data == {"user": encoded, "password": base64.b64encode(b"new").decode()}


def test_secret_errors_name_the_key_never_the_value() -> None:
    with pytest.raises(ManifestError) as info:
        parse(_secret(data={"password": SECRET_VALUE}))

    assert str(info.value) == (
        "deployment.yaml: document 1: data.password: must be base64-encoded (or use stringData)"
    )
    assert SECRET_VALUE not in str(info.value)


def test_well_known_secret_types_need_their_keys() -> None:
    tls = _secret(type="kubernetes.io/tls", stringData={"tls.crt": "c"})

    with pytest.raises(ManifestError, match=r"needs the key .tls\.key."):
        parse(tls)


def test_service_account_is_stored_and_its_token_fields_warn() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "robot"},
        "automountServiceAccountToken": True,
    }

    parsed = parse(doc, file="sa.yaml")

    assert [type(o) for o in parsed.objects] == [ServiceAccount]
    assert parsed.warnings == (
        'sa.yaml: document 1: ServiceAccount "robot": automountServiceAccountToken: '
        "not supported yet, ignored",
    )
