"""Hostile input: size, document, depth and alias limits, junk bytes, and a property test.

Whatever bytes arrive, parse_manifests either returns or raises ManifestError with
one sentence; no other exception may escape.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from master.manifest import ManifestError, parse_manifests
from tests.unit.test_manifest_support import DEPLOYMENT, dump, error, error_of, mutate

BILLION_LAUGHS = b"""\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_refused_before_expansion() -> None:
    message = error_of([("laughs.yaml", BILLION_LAUGHS)])

    assert message.startswith("laughs.yaml: document 1: line ")
    assert "document too large once its aliases are expanded" in message


def test_more_than_200_aliases_are_refused() -> None:
    content = b"a: &x 1\nb: [" + b",".join([b"*x"] * 201) + b"]\n"

    message = error_of([("alias.yaml", content)])

    assert message == "alias.yaml: document 1: line 2: too many aliases (at most 200 in one file)"


def test_self_referencing_alias_is_refused() -> None:
    assert error_of([("r.yaml", b"a: &a [*a]\n")]) == (
        "r.yaml: document 1: line 1: alias *a refers to itself"
    )


def test_small_aliases_still_work() -> None:
    text = (
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: &l {app: web}}\n"
        b"spec:\n  selector: {matchLabels: *l}\n  template:\n    metadata: {labels: *l}\n"
        b"    spec: {containers: [{name: web, image: nginx}]}\n"
    )

    (dep,) = parse_manifests([("a.yaml", text)]).objects

    assert dep.meta.labels == {"app": "web"}


def test_file_over_one_mebibyte_is_refused() -> None:
    content = dump(DEPLOYMENT) + b"# " + b"x" * (1024 * 1024) + b"\n"

    message = error_of([("big.yaml", content)])

    assert message.startswith("big.yaml: file is too large (")
    assert "at most 1048576 bytes" in message


def test_more_than_200_documents_in_one_apply_are_refused() -> None:
    files = [("a.yaml", b"---\n" * 150), ("b.yaml", b"---\n" * 60)]

    message = error_of(files)

    assert message.startswith("b.yaml: document 51: line ")
    assert "too many documents (at most 200 in one apply)" in message


def test_nesting_deeper_than_40_is_refused() -> None:
    deep: Any = "x"
    for _ in range(41):
        deep = {"k": deep}
    doc = mutate(DEPLOYMENT, "metadata.annotations", deep)

    message = error(doc)

    assert message.startswith("deployment.yaml: document 1: line ")
    assert message.endswith("nested deeper than 40 levels")


def test_deep_flow_nesting_is_refused_without_recursion() -> None:
    message = error_of([("deep.yaml", b"[" * 100_000)])

    # libyaml's own guard (1000 levels) may fire first, since its scanner reads ahead.
    assert message.startswith("deep.yaml: document 1: line 1: ")
    assert "nest" in message


def test_invalid_utf8_is_refused_with_its_line() -> None:
    content = b"apiVersion: v1\nkind: Service\nmetadata: {name: \xff\xfe}\n"

    assert error_of([("bin.yaml", content)]) == (
        "bin.yaml: line 3: not valid UTF-8 text (byte 0xff)"
    )


def test_yaml_syntax_error_names_the_line() -> None:
    content = b"apiVersion: v1\nkind: Service\nmetadata:\n  name: [web\nspec: {}\n"

    message = error_of([("bad.yaml", content)])

    assert message.startswith("bad.yaml: document 1: line ")
    assert "invalid YAML" in message


def test_control_characters_and_unsafe_tags_are_refused() -> None:
    control = error_of([("c.yaml", b"kind: Service\x01\n")])
    python_tag = error_of([("t.yaml", b"kind: !!python/object/apply:os.system [ls]\n")])

    assert control.startswith("c.yaml: document 1: line 1: invalid YAML: ")
    assert python_tag.startswith("t.yaml: document 1: line 1: invalid YAML: ")


def test_duplicate_keys_are_refused() -> None:
    content = b"apiVersion: v1\nkind: Service\nkind: Service\n"

    assert error_of([("d.yaml", content)]) == (
        'd.yaml: document 1: line 3: duplicate key "kind" in the same map'
    )


@pytest.mark.parametrize(
    "content",
    [
        b"a: 2024-13-45\n",
        b"a: " + b"9" * 5000 + b"\n",
        b"? [a, b]\n: c\n",
        b"\x00\x01\x02\x03",
        b"apiVersion: v1\nkind: Service\nmetadata: {name: web, 3: x}\n",
        b"apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: .nan}]}\n",
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: [1]\n",
        b"kind: [Deployment]\n",
        b"kind: {Deployment: 1}\n",
        b"!!binary aGVsbG8=\n",
    ],
)
def test_junk_gives_manifest_error(content: bytes) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifests([("junk.yaml", content)])

    assert str(info.value).startswith("junk.yaml: ")
    assert "\n" not in str(info.value)


def test_random_binary_junk_gives_manifest_error() -> None:
    junk = os.urandom(4096)

    with pytest.raises(ManifestError):
        parse_manifests([("junk.bin", junk)])


def _only_manifest_errors(files: list[tuple[str, bytes]]) -> None:
    try:
        parse_manifests(files)
    except ManifestError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_give_objects_or_manifest_error(data: bytes) -> None:
    _only_manifest_errors([("fuzz.yaml", data)])


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
_PATHS = [
    "metadata",
    "metadata.name",
    "metadata.labels",
    "spec",
    "spec.replicas",
    "spec.selector",
    "spec.selector.matchLabels",
    "spec.strategy",
    "spec.template",
    "spec.template.metadata",
    "spec.template.spec",
    "spec.template.spec.containers",
    "spec.template.spec.containers[0]",
    "spec.template.spec.containers[0].env",
    "spec.template.spec.containers[0].ports",
    "spec.template.spec.containers[0].ports[0]",
    "spec.template.spec.containers[0].resources",
    "spec.template.spec.containers[0].command",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_PATHS), _JSONISH)
def test_any_value_anywhere_gives_objects_or_manifest_error(path: str, value: Any) -> None:
    doc = mutate(DEPLOYMENT, path, value)

    _only_manifest_errors([("fuzz.yaml", dump(doc))])


def test_a_trailing_newline_never_passes_as_part_of_a_valid_name() -> None:
    doc = (
        b'apiVersion: v1\nkind: Service\nmetadata: {name: "web\\n"}\nspec:\n  ports: [{port: 80}]\n'
    )

    with pytest.raises(ManifestError) as e:
        parse_manifests([("svc.yaml", doc)])

    assert "metadata.name" in str(e.value) and "\n" not in str(e.value)
