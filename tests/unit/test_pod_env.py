"""resolve_container_env: Kubernetes' env sources resolved for a pod on its node (pure)."""

from __future__ import annotations

import base64

from master.app.podenv import ResolvedVar, references, resolve_container_env
from master.manifest import parse_manifests
from master.model import (
    ConfigMap,
    Container,
    Deployment,
    Node,
    ObjectMeta,
    Pod,
    Resources,
    Secret,
    StoredObject,
)
from tests.unit.test_manifest_support import DEPLOYMENT, dump, mutate

NODE = Node(ObjectMeta("n1"), "10.0.0.7", Resources(4000, 8 * 2**30), Resources(3500, 6 * 2**30))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


OBJECTS: dict[tuple[str, str], StoredObject] = {
    ("ConfigMap", "settings"): ConfigMap(
        ObjectMeta("settings"), {"MODE": "prod", "LEVEL": "debug", "bad=key": "x", "1st": "y"}
    ),
    ("Secret", "creds"): Secret(ObjectMeta("creds"), data={"password": _b64("p4ss")}),
}


def _cm(name: str, key: str, **more: object) -> dict[str, object]:
    return {"configMapKeyRef": {"name": name, "key": key, **more}}


def _sec(name: str, key: str) -> dict[str, object]:
    return {"secretKeyRef": {"name": name, "key": key}}


def _field(path: str) -> dict[str, object]:
    return {"fieldRef": {"fieldPath": path}}


def _res(resource: str, divisor: str | None = None) -> dict[str, object]:
    ref: dict[str, object] = {"resource": resource}
    if divisor:
        ref["divisor"] = divisor
    return {"resourceFieldRef": ref}


def _lookup(kind: str, name: str) -> StoredObject | None:
    return OBJECTS.get((kind, name))


def _pod(container: dict[str, object]) -> tuple[Pod, Container]:
    doc = mutate(DEPLOYMENT, "spec.template.spec.containers[0]", container)
    (dep,) = parse_manifests([("d.yaml", dump(doc))]).objects
    assert isinstance(dep, Deployment)
    meta = ObjectMeta("web-abc12", uid="u-1", labels={"app": "web"}, annotations={"team": "blue"})
    pod = Pod(meta, dep.template.spec, owner="web", node_name="n1")
    return pod, pod.spec.containers[0]


def _resolve(container: dict[str, object]) -> tuple[list[tuple[str, str, bool]], str]:
    pod, c = _pod({"name": "web", "image": "nginx:1.25", **container})
    env = resolve_container_env(pod, c, _lookup, NODE)
    return [(v.name, v.value, v.from_source) for v in env.variables], env.error


def test_env_from_first_then_env_in_order_with_values_from_every_source() -> None:
    variables, error = _resolve(
        {
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
            "env": [
                {"name": "PW", "valueFrom": _sec("creds", "password")},
                {"name": "MODE", "valueFrom": _cm("settings", "MODE")},
                {"name": "URL", "value": "http://$(MODE)"},
                {"name": "POD", "valueFrom": _field("metadata.name")},
                {"name": "NS", "valueFrom": _field("metadata.namespace")},
                {"name": "APP", "valueFrom": _field("metadata.labels['app']")},
                {"name": "TEAM", "valueFrom": _field("metadata.annotations['team']")},
                {"name": "NODE", "valueFrom": _field("spec.nodeName")},
                {"name": "IP", "valueFrom": _field("status.podIP")},
                {"name": "HOST", "valueFrom": _field("status.hostIP")},
            ],
        }
    )  # fmt: skip

    assert error == ""
    assert variables == [
        ("APP_1st", "y", True),  # "APP_bad=key" is not a variable name: skipped
        ("APP_LEVEL", "debug", True),
        ("APP_MODE", "prod", True),
        ("PW", "p4ss", True),
        ("MODE", "prod", True),
        ("URL", "http://$(MODE)", False),  # the agent expands it
        ("POD", "web-abc12", True),
        ("NS", "default", True),
        ("APP", "web", True),
        ("TEAM", "blue", True),
        ("NODE", "n1", True),
        ("IP", "10.0.0.7", True),
        ("HOST", "10.0.0.7", True),
    ]


def test_resources_with_divisors_and_the_node_when_there_is_no_limit() -> None:
    variables, _ = _resolve(
        {
            "resources": {
                "requests": {"cpu": "250m", "memory": "64Mi"},
                "limits": {"cpu": "1500m"},
            },
            "env": [
                {"name": "CPU", "valueFrom": _res("limits.cpu")},
                {"name": "MCPU", "valueFrom": _res("requests.cpu", "1m")},
                {"name": "MEM", "valueFrom": _res("requests.memory", "1Mi")},
                {"name": "MAXMEM", "valueFrom": _res("limits.memory", "1Gi")},
            ],
        }
    )  # fmt: skip

    assert variables == [
        ("CPU", "2", True),  # 1.5 cores, rounded up as Kubernetes does
        ("MCPU", "250", True),
        ("MEM", "64", True),
        ("MAXMEM", "6", True),  # no memory limit: the node's allocatable
    ]


def test_missing_objects_and_keys_hold_the_container_with_the_kubelets_words() -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"envFrom": [{"configMapRef": {"name": "nope"}}]}, 'configmap "nope" not found'),
        (
            {"env": [{"name": "X", "valueFrom": _sec("gone", "k")}]},
            'secret "gone" not found',
        ),
        (
            {"env": [{"name": "X", "valueFrom": _sec("creds", "k")}]},
            "couldn't find key k in Secret default/creds",
        ),
        (
            {
                "env": [
                    {
                        "name": "X",
                        "valueFrom": _cm("settings", "k"),
                    }
                ]
            },
            "couldn't find key k in ConfigMap default/settings",
        ),
    ]
    for container, message in cases:
        assert _resolve(container) == ([], message)


def test_optional_sources_that_are_missing_are_left_out() -> None:
    variables, error = _resolve(
        {
            "envFrom": [{"secretRef": {"name": "nope", "optional": True}}],
            "env": [
                {"name": "A", "valueFrom": _cm("settings", "k", optional=True)},
                {"name": "B", "value": "b"},
            ],
        }
    )  # fmt: skip

    assert (variables, error) == ([("B", "b", False)], "")


def test_references_name_the_config_maps_and_secrets_a_pod_reads() -> None:
    pod, _ = _pod(
        {
            "name": "web",
            "image": "nginx:1.25",
            "envFrom": [{"secretRef": {"name": "creds"}}],
            "env": [
                {"name": "M", "valueFrom": _cm("settings", "MODE")},
                {"name": "P", "valueFrom": _field("metadata.name")},
            ],
        }
    )  # fmt: skip

    assert references(pod) == {("Secret", "creds"), ("ConfigMap", "settings")}
    assert ResolvedVar("a", "b", True).from_source
