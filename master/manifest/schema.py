"""The shape of what pinnace accepts, as data: one source for OpenAPI and `kubectl explain`.

The validators (deployment.py, service.py, podspec.py, probes.py, meta.py) decide
what a manifest may say; this module describes the same fields as a tree of
`Field`s, built from the validators' own field lists (SPEC_SUPPORTED,
CONTAINER_SUPPORTED, ...): a field a validator accepts but no Field types is
still described (as any value) and fails a unit test, so the OpenAPI documents
(master/api/kube/openapi.py) never drift from validation. Lists that Kubernetes
merges by key carry the merge key (containers by name, ports by
containerPort/port, env by name), which kubectl reads to compute strategic
merge patches and the server uses to apply them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from master.manifest import (
    deployment,
    dns,
    ingress,
    meta,
    podspec,
    probes,
    security,
    service,
    volumes,
)

# Kinds of leaf value: OpenAPI types, plus Kubernetes' int-or-string and string maps.
Scalar = str  # "string" | "integer" | "boolean" | "int-or-string" | "string-map"


@dataclass(frozen=True, slots=True)
class Type:
    """A named object type (an OpenAPI component schema)."""

    name: str  # Kubernetes' definition name, e.g. io.k8s.api.apps.v1.DeploymentSpec
    description: str
    fields: tuple[Field, ...]
    required: tuple[str, ...] = ()
    # (group, version, kind) for top-level kinds
    gvk: tuple[str, str, str] | None = None


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    description: str
    # A Scalar name or a Type
    type: Scalar | Type
    is_list: bool = False
    merge_key: str = ""
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    read_only: bool = field(default=False)


# "validator field: type" pairs the schema had to describe generically because no Field
# declares them; tests/unit/test_kube_schema.py keeps it empty. The master never fails on it.
UNTYPED: list[str] = []


def _check(type_: Type, names: tuple[str, ...]) -> Type:
    """The type with exactly the fields its validator accepts (plus server-filled ones).

    A field the validator accepts but no Field declares is still described (as any
    value) and listed in UNTYPED; a declared field the validator refuses is dropped.
    """
    fields = [f for f in type_.fields if f.read_only or f.name in names]
    declared = {f.name for f in type_.fields}
    for name in names:
        if name not in declared:
            UNTYPED.append(f"{type_.name}: {name}")
            fields.append(Field(name, "Accepted by pinnace.", "any"))
    return replace(type_, fields=tuple(fields))


S, INT, B, IOS, MAP = "string", "integer", "boolean", "int-or-string", "string-map"

OBJECT_META = _check(
    Type(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "Standard object metadata: name, labels, annotations.",
        (
            Field("name", "Name, unique among objects of its kind.", S),
            Field("namespace", 'The namespace (default: "default"); it must exist.', S),
            Field("labels", "Labels for selection by selectors.", MAP),
            Field("annotations", "Unstructured key-value data.", MAP),
            Field("uid", "Set by the server.", S, read_only=True),
            Field(
                "resourceVersion", "Set by the server; changes on every write.", S, read_only=True
            ),
            Field(
                "generation",
                "Set by the server; bumped when the spec changes.",
                INT,
                read_only=True,
            ),
            Field("creationTimestamp", "Set by the server.", S, read_only=True),
        ),
    ),
    meta.SUPPORTED,
)

_HEADER = Type(
    "io.k8s.api.core.v1.HTTPHeader",
    "An HTTP header to send with a probe.",
    (Field("name", "Header name.", S), Field("value", "Header value.", S)),
    required=("name", "value"),
)
_HTTP_GET = Type(
    "io.k8s.api.core.v1.HTTPGetAction",
    "An HTTP GET request; any status from 200 to 399 passes.",
    (
        Field("path", "Path to request (default /).", S),
        Field("port", "Port number or name of a container port.", IOS),
        Field("scheme", 'Only "HTTP".', S, enum=("HTTP",)),
        Field("httpHeaders", "Headers to send.", _HEADER, is_list=True),
        Field("host", "Not supported: the pod's address is always used.", S),
    ),
    required=("port",),
)
_TCP = Type(
    "io.k8s.api.core.v1.TCPSocketAction",
    "Opening a TCP connection passes.",
    (Field("port", "Port number or name.", IOS), Field("host", "Not supported.", S)),
    required=("port",),
)
_EXEC = Type(
    "io.k8s.api.core.v1.ExecAction",
    "A command run in the container; exit status 0 passes.",
    (Field("command", "The command and its arguments.", S, is_list=True),),
)
PROBE = _check(
    Type(
        "io.k8s.api.core.v1.Probe",
        "A check the agent runs against a container; exactly one handler.",
        (
            Field("httpGet", "HTTP GET handler.", _HTTP_GET),
            Field("tcpSocket", "TCP handler.", _TCP),
            Field("exec", "Command handler.", _EXEC),
            Field("initialDelaySeconds", "Seconds before the first check.", INT, minimum=0),
            Field(
                "timeoutSeconds", "Seconds before a check times out (default 1).", INT, minimum=1
            ),
            Field("periodSeconds", "Seconds between checks (default 10).", INT, minimum=1),
            Field("successThreshold", "Passes in a row to count as passing.", INT, minimum=1),
            Field("failureThreshold", "Failures in a row to count as failing.", INT, minimum=1),
        ),
    ),
    probes.PROBE_SUPPORTED,
)
_QUANTITIES = Type(
    "io.k8s.api.core.v1.ResourceRequirements",
    "CPU and memory a container requests and may use.",
    (
        Field("requests", 'Minimum amounts, e.g. cpu: "250m", memory: 64Mi.', MAP),
        Field("limits", "Maximum amounts.", MAP),
    ),
)


# A pod field and a container resource, as env[].valueFrom and downwardAPI items name them.
_OBJECT_FIELD_SELECTOR = Type(
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "A field of the pod, e.g. metadata.name or status.podIP.",
    (Field("apiVersion", "v1.", S), Field("fieldPath", "The field's path.", S)),
    required=("fieldPath",),
)
_RESOURCE_FIELD_SELECTOR = Type(
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "limits.cpu, limits.memory, requests.cpu or requests.memory.",
    (
        Field("containerName", "The container (default: this one).", S),
        Field("resource", "The resource.", S),
        Field("divisor", "Unit of the value (default 1).", IOS),
    ),
    required=("resource",),
)


def _key_selector(name: str, what: str) -> Type:
    return Type(
        f"io.k8s.api.core.v1.{name}",
        f"A key of a {what}.",
        (
            Field("name", f"The {what}'s name.", S),
            Field("key", "The key.", S),
            Field("optional", "Leave the variable out when missing.", B),
        ),
        required=("key",),
    )


_ENV_SOURCE = Type(
    "io.k8s.api.core.v1.EnvVarSource",
    "Where a variable's value comes from (exactly one).",
    (
        Field(
            "configMapKeyRef",
            "A ConfigMap key.",
            _key_selector("ConfigMapKeySelector", "ConfigMap"),
        ),
        Field("secretKeyRef", "A Secret key.", _key_selector("SecretKeySelector", "Secret")),
        Field(
            "fieldRef",
            "A field of the pod.",
            _OBJECT_FIELD_SELECTOR,
        ),
        Field(
            "resourceFieldRef",
            "A container's cpu or memory request or limit.",
            _RESOURCE_FIELD_SELECTOR,
        ),
    ),
)
_ENV = Type(
    "io.k8s.api.core.v1.EnvVar",
    "An environment variable.",
    (
        Field("name", "Variable name.", S),
        Field("value", "Value; $(VAR) expands.", S),
        Field("valueFrom", "Where the value comes from instead.", _ENV_SOURCE),
    ),
    required=("name",),
)


def _source_ref(name: str, what: str) -> Type:
    return Type(
        f"io.k8s.api.core.v1.{name}",
        f"A {what} whose keys become variables.",
        (Field("name", f"The {what}'s name.", S), Field("optional", "May be missing.", B)),
    )


_ENV_FROM = Type(
    "io.k8s.api.core.v1.EnvFromSource",
    "Every key of a ConfigMap or Secret as a variable.",
    (
        Field("prefix", "Put before each key.", S),
        Field("configMapRef", "The ConfigMap.", _source_ref("ConfigMapEnvSource", "ConfigMap")),
        Field("secretRef", "The Secret.", _source_ref("SecretEnvSource", "Secret")),
    ),
)
_CONTAINER_PORT = Type(
    "io.k8s.api.core.v1.ContainerPort",
    "A port the container listens on; published on the node's address.",
    (
        Field("containerPort", "Port number in the container.", INT, minimum=1, maximum=65535),
        Field("protocol", "TCP (default) or UDP.", S, enum=podspec.PROTOCOLS),
        Field("name", "Name services and probes may refer to.", S),
        Field(
            "hostPort",
            "Fixed port on the node (default: an ephemeral one).",
            INT,
            minimum=0,
            maximum=65535,
        ),
    ),
    required=("containerPort",),
)
_VOLUME_MOUNT = Type(
    "io.k8s.api.core.v1.VolumeMount",
    "Where a container sees one of the pod's volumes.",
    (
        Field("name", "The volume's name in spec.volumes.", S),
        Field("mountPath", "Absolute path in the container.", S),
        Field("subPath", "A path inside the volume to mount instead of its root.", S),
        Field("readOnly", "Mount read-only.", B),
        Field("mountPropagation", "Not supported (ignored).", S),
        Field("subPathExpr", "Not supported (ignored).", S),
        Field("recursiveReadOnly", "Not supported (ignored).", S),
    ),
    required=("name", "mountPath"),
)
_EMPTY_DIR = Type(
    "io.k8s.api.core.v1.EmptyDirVolumeSource",
    "Scratch space that lives and dies with the pod.",
    (
        Field("medium", '"" (node disk) or "Memory" (tmpfs).', S, enum=("", "Memory")),
        Field("sizeLimit", "Size of a Memory volume (default 64Mi).", IOS),
    ),
)
_HOST_PATH = Type(
    "io.k8s.api.core.v1.HostPathVolumeSource",
    "A directory or file of the node.",
    (
        Field("path", "Absolute path on the node.", S),
        Field("type", "What must be there.", S, enum=volumes.HOST_PATH_TYPES),
    ),
    required=("path",),
)
_CLAIM = Type(
    "io.k8s.api.core.v1.PersistentVolumeClaimVolumeSource",
    "A PersistentVolumeClaim's node-local volume.",
    (
        Field("claimName", "The claim's name.", S),
        Field("readOnly", "Mount read-only.", B),
    ),
    required=("claimName",),
)
_KEY_TO_PATH = Type(
    "io.k8s.api.core.v1.KeyToPath",
    "One key as a file.",
    (
        Field("key", "The key.", S),
        Field("path", "Relative path of the file.", S),
        Field("mode", "File mode (0 to 0777).", INT, minimum=0, maximum=0o777),
    ),
    required=("key", "path"),
)


def _key_files(kind: str, name_field: str) -> Type:
    return Type(
        f"io.k8s.api.core.v1.{kind}VolumeSource",
        f"The keys of a {kind} as files (on a tmpfs, updated when it changes).",
        (
            Field(name_field, f"The {kind}'s name.", S),
            Field(
                "items",
                "Which keys, as which files (default: every key).",
                _KEY_TO_PATH,
                is_list=True,
            ),
            Field(
                "defaultMode", "Mode of the files (default 0644).", INT, minimum=0, maximum=0o777
            ),
            Field("optional", f"Start even when the {kind} is missing.", B),
        ),
    )


_DOWNWARD_FILE = Type(
    "io.k8s.api.core.v1.DownwardAPIVolumeFile",
    "One file of pod information.",
    (
        Field("path", "Relative path of the file.", S),
        Field(
            "fieldRef",
            "metadata.name, namespace, uid, labels, annotations or one label/annotation.",
            _OBJECT_FIELD_SELECTOR,
        ),
        Field(
            "resourceFieldRef",
            "A container's cpu or memory request or limit.",
            _RESOURCE_FIELD_SELECTOR,
        ),
        Field("mode", "File mode (0 to 0777).", INT, minimum=0, maximum=0o777),
    ),
    required=("path",),
)
_DOWNWARD_ITEMS = Field("items", "The files.", _DOWNWARD_FILE, is_list=True)
_DEFAULT_MODE = Field(
    "defaultMode", "Mode of the files (default 0644).", INT, minimum=0, maximum=0o777
)


def _projection(kind: str) -> Type:
    return Type(
        f"io.k8s.api.core.v1.{kind}Projection",
        f"The keys of a {kind} as files of the projection.",
        (
            Field("name", f"The {kind}'s name.", S),
            Field("items", "Which keys, as which files.", _KEY_TO_PATH, is_list=True),
            Field("optional", f"Start even when the {kind} is missing.", B),
        ),
    )


_PROJECTED = Type(
    "io.k8s.api.core.v1.ProjectedVolumeSource",
    "Files of several ConfigMaps, Secrets and pod fields in one directory.",
    (
        Field(
            "sources",
            "The projections, in order.",
            Type(
                "io.k8s.api.core.v1.VolumeProjection",
                "One projection (exactly one of its fields).",
                (
                    Field("configMap", "A ConfigMap's keys.", _projection("ConfigMap")),
                    Field("secret", "A Secret's keys.", _projection("Secret")),
                    Field(
                        "downwardAPI",
                        "Pod information.",
                        Type(
                            "io.k8s.api.core.v1.DownwardAPIProjection",
                            "Pod information as files.",
                            (_DOWNWARD_ITEMS,),
                        ),
                    ),
                    Field("serviceAccountToken", "Not supported: left out, warned.", "any"),
                    Field("clusterTrustBundle", "Not supported: left out, warned.", "any"),
                ),
            ),
            is_list=True,
        ),
        _DEFAULT_MODE,
    ),
)
_DOWNWARD_API = Type(
    "io.k8s.api.core.v1.DownwardAPIVolumeSource",
    "Pod information as files (updated in place).",
    (_DOWNWARD_ITEMS, _DEFAULT_MODE),
)

VOLUME = Type(
    "io.k8s.api.core.v1.Volume",
    "A pod volume: exactly one source.",
    (
        Field("name", "Name the mounts refer to (DNS-1123 label).", S),
        Field("emptyDir", "Scratch space of the pod.", _EMPTY_DIR),
        Field("hostPath", "A path of the node.", _HOST_PATH),
        Field("persistentVolumeClaim", "Node-local persistent storage.", _CLAIM),
        Field("configMap", "A ConfigMap's keys as files.", _key_files("ConfigMap", "name")),
        Field("secret", "A Secret's keys as files.", _key_files("Secret", "secretName")),
        Field("projected", "ConfigMaps, Secrets and pod fields as files.", _PROJECTED),
        Field("downwardAPI", "Pod information as files.", _DOWNWARD_API),
        *(
            Field(name, "Not supported yet: the volume and its mounts are left out.", "any")
            for name in volumes.UNSUPPORTED_SOURCES
        ),
    ),
    required=("name",),
)
_RUN_AS = (
    Field("runAsUser", "The user id the process runs as (the image's when unset).", INT,
          minimum=0, maximum=security.ID_MAX),
    Field("runAsGroup", "The group id the process runs as.", INT,
          minimum=0, maximum=security.ID_MAX),
    Field("runAsNonRoot", "Refuse to start a container that would run as root.", B),
)  # fmt: skip
_SECURITY = _check(
    Type(
        "io.k8s.api.core.v1.SecurityContext",
        "Who the container's process is (over its pod's securityContext).",
        (
            *_RUN_AS,
            Field("readOnlyRootFilesystem", "Mount the image's filesystem read-only.", B),
            *(
                Field(name, "Not supported yet (ignored).", "any")
                for name in security.CONTAINER_UNSUPPORTED
            ),
        ),
    ),
    (*security.CONTAINER_SUPPORTED, *security.CONTAINER_UNSUPPORTED),
)
_POD_SECURITY = _check(
    Type(
        "io.k8s.api.core.v1.PodSecurityContext",
        "Who every container's process is, and the group owning the pod's volumes.",
        (
            *_RUN_AS,
            Field(
                "fsGroup",
                "The group owning the pod's volumes, added to every process.",
                INT,
                minimum=0,
                maximum=security.ID_MAX,
            ),
            Field(
                "fsGroupChangePolicy",
                "Accepted; ownership is changed when the volume's "
                "root does not match (OnRootMismatch).",
                S,
                enum=security.FS_GROUP_CHANGE_POLICIES,
            ),
            Field("supplementalGroups", "More groups for every process.", INT, is_list=True),
            *(
                Field(name, "Not supported yet (ignored).", "any")
                for name in security.POD_UNSUPPORTED
            ),
        ),
    ),
    (*security.POD_SUPPORTED, *security.POD_UNSUPPORTED),
)
CONTAINER = _check(
    Type(
        "io.k8s.api.core.v1.Container",
        "A container to run in the pod.",
        (
            Field("name", "Name, unique within the pod (DNS-1123 label).", S),
            Field("image", "Image reference.", S),
            Field("command", "Entrypoint; the image's when empty.", S, is_list=True),
            Field("args", "Arguments to the entrypoint.", S, is_list=True),
            Field("env", "Environment variables.", _ENV, is_list=True, merge_key="name"),
            Field("envFrom", "ConfigMaps and Secrets as variables.", _ENV_FROM, is_list=True),
            Field(
                "ports",
                "Ports to publish.",
                _CONTAINER_PORT,
                is_list=True,
                merge_key="containerPort",
            ),
            Field("resources", "Requests and limits.", _QUANTITIES),
            Field("imagePullPolicy", "When to pull the image.", S, enum=podspec.PULL_POLICIES),
            Field("readinessProbe", "Traffic flows only while it passes.", PROBE),
            Field("livenessProbe", "The container is restarted when it fails.", PROBE),
            Field(
                "volumeMounts",
                "The pod's volumes this container mounts.",
                _VOLUME_MOUNT,
                is_list=True,
                merge_key="mountPath",
            ),
            Field("stdin", "Keep the main process's stdin open (kubectl attach -i).", B),
            Field("stdinOnce", "Close that stdin when the first attach ends.", B),
            Field("tty", "Give the main process a terminal.", B),
            Field("securityContext", "Who the process is.", _SECURITY),
        ),
        required=("name", "image"),
    ),
    podspec.CONTAINER_SUPPORTED,
)
_DNS_OPTION = Type(
    "io.k8s.api.core.v1.PodDNSConfigOption",
    "A resolver option.",
    (Field("name", "Option name, e.g. ndots.", S), Field("value", "Its value, if any.", S)),
)
_DNS = Type(
    "io.k8s.api.core.v1.PodDNSConfig",
    "DNS settings merged into what the pod's dnsPolicy gives.",
    (
        Field("nameservers", "Nameserver IP addresses (at most 3).", S, is_list=True),
        Field("searches", "Search domains (at most 32).", S, is_list=True),
        Field("options", "Resolver options.", _DNS_OPTION, is_list=True),
    ),
)
POD_SPEC = _check(
    Type(
        "io.k8s.api.core.v1.PodSpec",
        "What a pod runs.",
        (
            Field(
                "containers", "Containers of the pod.", CONTAINER, is_list=True, merge_key="name"
            ),
            Field("restartPolicy", 'Only "Always" for a Deployment.', S, enum=("Always",)),
            Field(
                "terminationGracePeriodSeconds",
                "Seconds between SIGTERM and SIGKILL.",
                INT,
                minimum=0,
            ),
            Field(
                "serviceAccountName", "The pod's service account (shown; no token is mounted).", S
            ),
            Field("serviceAccount", "Deprecated alias of serviceAccountName.", S),
            Field("automountServiceAccountToken", "Accepted; pinnace mounts no token.", B),
            Field(
                "dnsPolicy",
                "ClusterFirst (default: the node's cluster DNS), Default (the node's resolvers) "
                "or None (only dnsConfig).",
                S,
                enum=dns.DNS_POLICIES,
            ),
            Field("dnsConfig", "Nameservers, searches and options added to the policy's.", _DNS),
            Field(
                "enableServiceLinks",
                "Whether containers get <SVC>_SERVICE_HOST ... variables (default true).",
                B,
            ),
            Field(
                "volumes",
                "Volumes the containers may mount.",
                VOLUME,
                is_list=True,
                merge_key="name",
            ),
            Field("securityContext", "Who the processes are; the volumes' group.", _POD_SECURITY),
            Field("nodeName", "Set by the scheduler.", S, read_only=True),
        ),
        required=("containers",),
    ),
    podspec.POD_SUPPORTED,
)
_TEMPLATE_META = Type(
    "io.k8s.api.core.v1.PodTemplateMetadata",
    "Metadata of the pods made from the template.",
    (
        Field("labels", "Labels; must include the selector's.", MAP),
        Field("annotations", "Not supported yet (ignored).", MAP),
    ),
)
POD_TEMPLATE = Type(
    "io.k8s.api.core.v1.PodTemplateSpec",
    "The pods a Deployment makes.",
    (
        Field("metadata", "Labels of the pods.", _TEMPLATE_META),
        Field("spec", "What the pods run.", POD_SPEC),
    ),
    required=("spec",),
)
_SELECTOR = Type(
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "Which pods belong to the Deployment.",
    (
        Field("matchLabels", "Labels the pods must carry.", MAP),
        Field("matchExpressions", "Not supported yet.", S, is_list=True),
    ),
)
_ROLLING = Type(
    "io.k8s.api.apps.v1.RollingUpdateDeployment",
    "How fast a rolling update replaces pods.",
    (
        Field("maxSurge", 'Pods above replicas during the update (number or "25%").', IOS),
        Field("maxUnavailable", 'Pods below replicas during the update (number or "25%").', IOS),
    ),
)
_STRATEGY = Type(
    "io.k8s.api.apps.v1.DeploymentStrategy",
    "How a new template replaces the old pods.",
    (
        Field("type", "RollingUpdate (default) or Recreate.", S, enum=deployment.STRATEGIES),
        Field("rollingUpdate", "Rolling update parameters.", _ROLLING),
    ),
)
DEPLOYMENT_SPEC = _check(
    Type(
        "io.k8s.api.apps.v1.DeploymentSpec",
        "The desired state of a Deployment.",
        (
            Field(
                "replicas",
                "Number of pods (default 1).",
                INT,
                minimum=0,
                maximum=deployment.MAX_REPLICAS,
            ),
            Field("selector", "Label selector of the pods; immutable.", _SELECTOR),
            Field("template", "The pods to run.", POD_TEMPLATE),
            Field("strategy", "How updates replace pods.", _STRATEGY),
        ),
        required=("selector", "template"),
    ),
    deployment.SPEC_SUPPORTED,
)
_SERVICE_PORT = Type(
    "io.k8s.api.core.v1.ServicePort",
    "A port the service exposes through the load balancer.",
    tuple(
        f
        for f in (
            Field("name", "Name (required when there are several ports).", S),
            Field("protocol", 'Only "TCP".', S, enum=("TCP",)),
            Field("port", "Port the load balancer listens on.", INT, minimum=1, maximum=65535),
            Field("targetPort", "Container port number or name (default: port).", IOS),
            Field(
                "nodePort",
                "The port every node answers on (NodePort, LoadBalancer): from "
                "--service-node-port-range, or this one when given.",
                INT,
            ),
            Field("appProtocol", '"http" enables layer-7 retries.', S),
        )
        if f.name in service.PORT_FIELDS
    ),
    required=("port",),
)
SERVICE_SPEC = _check(
    Type(
        "io.k8s.api.core.v1.ServiceSpec",
        "The desired state of a Service.",
        (
            Field("ports", "Ports to expose.", _SERVICE_PORT, is_list=True, merge_key="port"),
            Field("selector", "Pods that receive the traffic.", MAP),
            Field("type", "How the service is exposed.", S, enum=service.TYPES),
            Field(
                "clusterIP",
                '"None" for a headless service; an address of the service range '
                "(--service-cidr) to ask for it; else the master picks one.",
                S,
            ),
            Field("clusterIPs", "The same as clusterIP, as a one-item list.", S, is_list=True),
            Field(
                "loadBalancerIP",
                "The external address asked for (LoadBalancer only): from the master's "
                "--lb-address-pool, or its one load balancer address.",
                S,
            ),
            Field(
                "publishNotReadyAddresses",
                "Pods are endpoints (named in DNS, proxied) before they are ready (default false).",
                B,
            ),
            Field(
                "allocateLoadBalancerNodePorts",
                "LoadBalancer only: false gives the Service no node ports but those its "
                "ports ask for (default true).",
                B,
            ),
        ),
    ),
    service.SPEC_SUPPORTED,
)
_NET = "io.k8s.api.networking.v1."
_INGRESS_PORT = _check(
    Type(
        _NET + "ServiceBackendPort",
        "A Service port, by number or by name (exactly one).",
        (
            Field("number", "The Service port's number.", INT, minimum=1, maximum=65535),
            Field("name", "The Service port's name.", S),
        ),
    ),
    ingress.PORT_FIELDS,
)
_INGRESS_SERVICE = _check(
    Type(
        _NET + "IngressServiceBackend",
        "A Service in the Ingress's namespace and one of its ports.",
        (
            Field("name", "The Service's name.", S),
            Field("port", "The Service port.", _INGRESS_PORT),
        ),
        required=("name",),
    ),
    ingress.SERVICE_BACKEND_FIELDS,
)
_INGRESS_BACKEND = _check(
    Type(
        _NET + "IngressBackend",
        "Where requests go: a Service port.",
        (
            Field("service", "The Service port requests go to.", _INGRESS_SERVICE),
            Field("resource", "Not supported: pinnace routes to Services only.", "object"),
        ),
    ),
    ingress.BACKEND_FIELDS,
)
_INGRESS_PATH = _check(
    Type(
        _NET + "HTTPIngressPath",
        "A path and where requests for it go.",
        (
            Field(
                "path",
                "An absolute path; Prefix matches it element by element (/foo matches /foo "
                "and /foo/bar, not /foobar).",
                S,
            ),
            Field(
                "pathType",
                "Prefix, Exact, or ImplementationSpecific (treated as Prefix).",
                S,
                enum=("Prefix", "Exact", "ImplementationSpecific"),
            ),
            Field("backend", "Where matching requests go.", _INGRESS_BACKEND),
        ),
        required=("pathType", "backend"),
    ),
    ingress.PATH_FIELDS,
)
_INGRESS_HTTP = _check(
    Type(
        _NET + "HTTPIngressRuleValue",
        "The paths of a rule.",
        (Field("paths", "Paths, longest match first.", _INGRESS_PATH, is_list=True),),
        required=("paths",),
    ),
    ingress.HTTP_FIELDS,
)
_INGRESS_RULE = _check(
    Type(
        _NET + "IngressRule",
        "Routes for one host (or every host).",
        (
            Field(
                "host",
                'A DNS name, or "*.example.com" (exactly one more label); empty: any host.',
                S,
            ),
            Field("http", "The rule's paths.", _INGRESS_HTTP),
        ),
    ),
    ingress.RULE_FIELDS,
)
_INGRESS_TLS = _check(
    Type(
        _NET + "IngressTLS",
        "Hosts served over HTTPS with a kubernetes.io/tls Secret's certificate (by SNI).",
        (
            Field("hosts", "The hosts the certificate is for.", S, is_list=True),
            Field("secretName", "A kubernetes.io/tls Secret (tls.crt, tls.key).", S),
        ),
    ),
    ingress.TLS_FIELDS,
)
INGRESS_SPEC = _check(
    Type(
        _NET + "IngressSpec",
        "How HTTP requests reaching the load balancer's ingress ports are routed.",
        (
            Field(
                "ingressClassName",
                'The IngressClass; "pinnace" (the default) when empty. Other classes are '
                "left to other controllers.",
                S,
            ),
            Field("defaultBackend", "Where requests no rule matches go.", _INGRESS_BACKEND),
            Field("rules", "Host and path rules.", _INGRESS_RULE, is_list=True),
            Field("tls", "TLS certificates by host.", _INGRESS_TLS, is_list=True),
        ),
    ),
    ingress.SPEC_SUPPORTED,
)
_STATUS_ANY = "object"  # status is the server's; shown as a free-form object


def _top(name: str, gvk: tuple[str, str, str], doc: str, spec: Type) -> Type:
    return Type(
        name,
        doc,
        (
            Field("apiVersion", "The versioned schema of this object.", S),
            Field("kind", "The kind of this object.", S),
            Field("metadata", "Standard object metadata.", OBJECT_META),
            Field("spec", "The desired state.", spec),
            Field("status", "The observed state; set by the server.", _STATUS_ANY, read_only=True),
        ),
        required=("metadata", "spec") if gvk[2] == "Deployment" else ("metadata",),
        gvk=gvk,
    )


DEPLOYMENT = _top(
    "io.k8s.api.apps.v1.Deployment",
    ("apps", "v1", "Deployment"),
    "A Deployment runs replicas of a pod template and rolls out changes to it.",
    DEPLOYMENT_SPEC,
)
SERVICE = _top(
    "io.k8s.api.core.v1.Service",
    ("", "v1", "Service"),
    "A Service load-balances TCP traffic to the ready pods its selector picks.",
    SERVICE_SPEC,
)
INGRESS = _top(
    _NET + "Ingress",
    ("networking.k8s.io", "v1", "Ingress"),
    "An Ingress routes HTTP by host and path onto Services, through the load balancer's "
    "ingress ports, with TLS from Secrets.",
    INGRESS_SPEC,
)
# Kinds users write, keyed by kind.
WRITABLE = {"Deployment": DEPLOYMENT, "Service": SERVICE, "Ingress": INGRESS}
