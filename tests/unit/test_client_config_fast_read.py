"""pinnace.conf as the master writes it is read without PyYAML, exactly as YAML reads it.

Every CLI command reads the file before it sends; importing PyYAML was ~13 ms of the
CLI's start-up (apply -> 3 running, issue 15). The fast reader must never read a text
differently from yaml.safe_load: it reads the layout render_client_config writes, and
leaves every other text to YAML.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from master.pki.clientconfig import (
    ClientConfig,
    _read_rendered,
    parse_client_config,
    render_client_config,
)
from tests.support import REPO

BASE64 = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
    min_size=1,
    max_size=64,
)
PRINTABLE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
# Characters YAML gives a meaning to, and a few it reads as line breaks or refuses.
EDITS = st.sampled_from(
    [*" \t\n\r\"'\\#:|>-?&*!%@`{}[],.~0aZ", "\u2028", "\x85", "\ufeff", "\x00", "é"]
)


def _pem(kind: str, lines: list[str]) -> bytes:
    return "\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----", ""]).encode()


PEMS = st.lists(BASE64, min_size=1, max_size=4)


@st.composite
def configs(draw: st.DrawFn) -> ClientConfig:
    return ClientConfig(
        server=draw(PRINTABLE),
        ca_pem=_pem("CERTIFICATE", draw(PEMS)),
        cert_pem=_pem("CERTIFICATE", draw(PEMS)),
        key_pem=_pem("PRIVATE KEY", draw(PEMS)),
        api_server=draw(PRINTABLE),
    )


def _yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return "refused by YAML"


@settings(max_examples=300, deadline=None)
@given(configs())
def test_a_rendered_config_is_read_as_yaml_reads_it(config: ClientConfig) -> None:
    text = render_client_config(config)

    fast = _read_rendered(text)

    assert fast is None or fast == _yaml(text)
    # Only escapes in the quoted values leave the master's own layout to YAML.
    if not any(c in config.server + config.api_server for c in '"\\'):
        assert fast == _yaml(text)


@settings(max_examples=1500, deadline=None)
@given(configs(), st.data())
def test_a_changed_config_is_read_as_yaml_reads_it_or_left_to_yaml(
    config: ClientConfig, data: st.DataObject
) -> None:
    text = render_client_config(config)
    # Anywhere, or (as often) at a line's start or end, where YAML's indentation rules bite.
    edges = sorted(
        {
            0,
            *(i for i, c in enumerate(text) if c == "\n"),
            *(i + 1 for i, c in enumerate(text) if c == "\n"),
        }
    )
    at = data.draw(st.integers(0, len(text)) | st.sampled_from(edges))
    how = data.draw(st.sampled_from(["insert", "replace", "delete"]))
    edit = data.draw(EDITS)
    if how == "insert":
        changed = text[:at] + edit + text[at:]
    elif how == "replace":
        changed = text[:at] + edit + text[at + 1 :]
    else:
        changed = text[:at] + text[at + 1 :]

    fast = _read_rendered(changed)

    assert fast is None or fast == _yaml(changed)


def test_a_hand_written_config_still_reads_through_yaml() -> None:
    pem = _pem("CERTIFICATE", ["AAAA"]).decode()
    text = (
        "# my cluster\nkind: Config\nserver: 10.0.0.1:7400   # unquoted\n"
        f"certificate-authority-data: {json.dumps(pem)}\n"
        f"client-certificate-data: {json.dumps(pem)}\n"
        f"client-key-data: {json.dumps(pem)}\n"
    )

    assert _read_rendered(text) is None
    assert parse_client_config(text, "my.conf").server == "10.0.0.1:7400"


def test_reading_the_master_s_config_does_not_import_yaml() -> None:
    config = ClientConfig(
        "127.0.0.1:7400",
        _pem("CERTIFICATE", ["AAAA"]),
        _pem("CERTIFICATE", ["BBBB"]),
        _pem("PRIVATE KEY", ["CCCC"]),
        "https://127.0.0.1:6443",
    )
    probe = (
        "import sys\n"
        "from master.pki.clientconfig import parse_client_config\n"
        f"parsed = parse_client_config({render_client_config(config)!r}, 'x')\n"
        "print(parsed.server, parsed.api_server, 'yaml' in sys.modules)\n"
    )

    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout

    assert out.split() == ["127.0.0.1:7400", "https://127.0.0.1:6443", "False"]
