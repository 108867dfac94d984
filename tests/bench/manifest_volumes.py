"""Which real manifests with volumes pinnace runs with their data kept: a table per file.

Run as `python -m tests.bench.manifest_volumes [--markdown] [--only FILE,...]` (root, for
size-enforced claims; Docker and the `pinnace/httpd` image, `make images`). For every
file of tests/fixtures/real-manifests/ and examples/ whose pod templates declare volumes
(or a StatefulSet's volumeClaimTemplates), it prints the volume types the file uses and
then, on a real master and agent (subprocesses, 127.0.0.1), whether the data written to
each writable volume is still there after the container is killed (and, for claims,
after the pod is deleted and its replacement runs).

Nothing can be pulled here, so each container is stood in for: its image becomes
`pinnace/httpd:latest` (busybox; or the manifest's own image where it exists locally),
running `sleep` with no probes, args, env or resources; the file's volumes and
volumeMounts are kept as they are. A claim, ConfigMap or Secret a volume names that the
file does not declare is made by the bench (64Mi; one key per `items` entry) and said
so in the table. So the table answers "does pinnace keep this manifest's data as the
manifest declares it", not "does the application run": the first warning `apply` gives
(unsupported fields it ignores) is shown beside it.

Results: per file, per writable mount: `kept` (the token read back), `lost`, or why it
could not be tried. Files run one after another, each deleted (and its pods gone)
before the next. Everything started is removed: the cluster, its containers, Docker
volumes and claim files.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import yaml

from agent.claim_disks import DEFAULT_ROOT as CLAIM_ROOT
from agent.claim_disks import ClaimDisks
from agent.volume_files import DEFAULT_ROOT as FILES_ROOT
from tests.bench.engine import BenchError, wait_until
from tests.bench.procs import REPO, PinnaceProcs

FIXTURES = REPO / "tests" / "fixtures" / "real-manifests"
EXAMPLES = REPO / "examples"
STAND_IN = "pinnace/httpd:latest"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
READ_ONLY_TYPES = ("configMap", "secret", "projected", "downwardAPI")


@dataclass
class Mount:
    workload: str
    container: str
    path: str
    volume: str
    kind: str  # the volume's type as the manifest names it
    result: str = "not tried"


@dataclass
class FileReport:
    file: str
    types: list[str]
    made: list[str] = field(default_factory=list)
    images: str = ""  # "own" (every image is on this machine) or which were stood in for
    warning: str = ""
    mounts: list[Mount] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        writable = [m for m in self.mounts if m.kind not in READ_ONLY_TYPES]
        if not writable:
            return "no writable volume"
        if all(m.result.startswith("kept") for m in writable):
            return "data kept"
        return "NOT all kept"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def _templates(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload document, its pod spec) for each workload."""
    for doc in docs:
        if doc.get("kind") in WORKLOADS:
            spec = doc.get("spec", {}).get("template", {}).get("spec")
            if isinstance(spec, dict):
                yield doc, spec


def _volume_kind(volume: dict[str, Any]) -> str:
    kind = next((k for k in volume if k != "name"), "?")
    if kind == "emptyDir" and (volume.get("emptyDir") or {}).get("medium") == "Memory":
        return "emptyDir (Memory)"
    return kind


def volume_types(docs: list[dict[str, Any]]) -> list[str]:
    """The volume types a file's workloads use, sorted ([] when none)."""
    kinds = set()
    for doc, spec in _templates(docs):
        kinds |= {_volume_kind(v) for v in spec.get("volumes") or []}
        if doc.get("spec", {}).get("volumeClaimTemplates"):
            kinds.add("volumeClaimTemplates")
    return sorted(kinds)


def mounts_of(docs: list[dict[str, Any]]) -> list[Mount]:
    found = []
    for doc, spec in _templates(docs):
        kinds = {v["name"]: _volume_kind(v) for v in spec.get("volumes") or []}
        for t in doc.get("spec", {}).get("volumeClaimTemplates") or []:
            kinds[t["metadata"]["name"]] = "volumeClaimTemplates"
        for c in spec.get("containers") or []:
            for m in c.get("volumeMounts") or []:
                kind = kinds.get(m["name"], "?")
                if m.get("readOnly"):
                    kind = f"{kind} (readOnly)"
                found.append(
                    Mount(doc["metadata"]["name"], c["name"], m["mountPath"], m["name"], kind)
                )
    return found


def stand_in(
    docs: list[dict[str, Any]], local_images: set[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The documents with each container stood in for, plus the claims, ConfigMaps and
    Secrets its volumes name that the file lacks (and what was made, to say so)."""
    declared = {(d.get("kind"), d.get("metadata", {}).get("name")) for d in docs}
    extra: list[dict[str, Any]] = []
    made: list[str] = []
    for doc, spec in _templates(docs):
        if "replicas" in doc.get("spec", {}):
            doc["spec"]["replicas"] = 1
        spec["terminationGracePeriodSeconds"] = 1
        for key in ("initContainers", "nodeSelector", "affinity", "tolerations"):
            spec.pop(key, None)
        for c in spec.get("containers") or []:
            if c.get("image") not in local_images:
                c["image"] = STAND_IN
            c["imagePullPolicy"] = "IfNotPresent"
            c["command"] = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
            for key in ("args", "env", "envFrom", "resources", "securityContext"):
                c.pop(key, None)
            for key in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
                c.pop(key, None)
        for v in spec.get("volumes") or []:
            if "persistentVolumeClaim" in v:
                name = v["persistentVolumeClaim"]["claimName"]
                if ("PersistentVolumeClaim", name) not in declared:
                    declared.add(("PersistentVolumeClaim", name))
                    made.append(f"claim {name} (64Mi)")
                    extra.append(
                        {
                            "apiVersion": "v1",
                            "kind": "PersistentVolumeClaim",
                            "metadata": {"name": name},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "64Mi"}},
                            },
                        }
                    )
            for kind in ("configMap", "secret"):
                if kind in v:
                    ref = v[kind]
                    name = ref.get("name") or ref.get("secretName")
                    obj_kind = "ConfigMap" if kind == "configMap" else "Secret"
                    if (obj_kind, name) not in declared:
                        declared.add((obj_kind, name))
                        keys = [i["key"] for i in ref.get("items") or []] or ["stand-in"]
                        made.append(f"{obj_kind} {name}")
                        data = {
                            "stringData" if kind == "secret" else "data": dict.fromkeys(
                                keys, "stand-in\n"
                            )
                        }
                        extra.append(
                            {
                                "apiVersion": "v1",
                                "kind": obj_kind,
                                "metadata": {"name": name},
                                **data,
                            }
                        )
    return docs + extra, made


def _running_container(
    procs: PinnaceProcs,
    client: docker.DockerClient,
    workload: str,
    container: str,
    other_than: str = "",
) -> tuple[str, Any, int]:
    """(pod name, Docker container, restart count) of `workload`'s running pod."""
    found: list[tuple[str, Any, int]] = []

    def running() -> bool:
        for pod in procs.get_json("pods")["items"]:
            meta, status = pod["metadata"], pod["status"]
            if meta.get("deletionTimestamp") or meta["name"] == other_than:
                continue
            if not meta["name"].startswith(workload + "-") or status.get("phase") != "Running":
                continue
            for cs in status.get("containerStatuses") or []:
                if cs["name"] == container and cs.get("ready") and cs.get("containerID"):
                    cid = cs["containerID"].removeprefix("docker://")
                    found.append((meta["name"], client.containers.get(cid), cs["restartCount"]))
                    return True
        return False

    wait_until(f"{workload}/{container} running", running, timeout=120)
    return found[0]


def _sh(container: Any, script: str) -> tuple[int, str]:
    code, out = container.exec_run(["sh", "-c", script])
    return int(code), out.decode(errors="replace").strip()


def _try_mount(procs: PinnaceProcs, client: docker.DockerClient, m: Mount) -> str:
    token = uuid.uuid4().hex
    probe = f"{m.path.rstrip('/')}/.pinnace-bench-{token[:8]}"
    pod, container, restarts = _running_container(procs, client, m.workload, m.container)
    code, out = _sh(container, f"echo {token} > {probe} && sync")
    if code != 0:
        return f"cannot write ({out[:60]})"
    container.kill()

    def restarted() -> bool:
        got = _running_container(procs, client, m.workload, m.container)
        return got[0] == pod and got[2] > restarts

    wait_until(f"{pod} restarted", restarted, timeout=120)
    _, container, _ = _running_container(procs, client, m.workload, m.container)
    code, out = _sh(container, f"cat {probe}")
    if out != token:
        return "lost at a container kill"
    if m.kind not in ("persistentVolumeClaim", "volumeClaimTemplates"):
        return "kept (container kill)"
    procs.cli("delete", "pod", pod)
    other = "" if m.kind == "volumeClaimTemplates" else pod  # a set's pod comes back by name
    new_pod, container, _ = _running_container(procs, client, m.workload, m.container, other)
    code, out = _sh(container, f"cat {probe}")
    return (
        "kept (container kill, pod delete)" if out == token else f"lost at a pod delete ({new_pod})"
    )


def _files(only: set[str]) -> list[Path]:
    paths = sorted(FIXTURES.glob("*.y*ml")) + sorted(EXAMPLES.rglob("*.y*ml"))
    return [p for p in paths if not only or p.name in only]


def _label(path: Path) -> str:
    return str(path.relative_to(REPO))


def run(only: set[str]) -> list[FileReport]:
    client = docker.from_env()
    local = {tag for image in client.images.list() for tag in image.tags}
    reports = []
    with_volumes = []
    for path in _files(only):
        docs = _docs(path)
        types = volume_types(docs)
        if types:
            reports.append(FileReport(_label(path), types, mounts=mounts_of(docs)))
            with_volumes.append((path, docs))
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-bench-manifest-volumes-"))
    procs = PinnaceProcs(client, workdir)
    try:
        procs.start_master("--no-lb")
        node = f"bench-volumes-{int(time.time())}"
        procs.start_agent(node, "--capacity-cpu", "64", "--capacity-memory", "256Gi")
        procs.wait_ready([node], timeout=60)
        for report, (path, docs) in zip(reports, with_volumes, strict=True):
            _run_file(procs, client, report, docs, workdir / path.name, local)
    finally:
        procs.close()
        for name in procs.node_names:
            for vol in client.volumes.list(filters={"label": f"pinnace.node={name}"}):
                vol.remove(force=True)
            disks = ClaimDisks(Path(CLAIM_ROOT) / name)
            for claim in disks.names():
                disks.remove(claim)
            shutil.rmtree(disks.root, ignore_errors=True)
            # The agent's configMap/secret files dir for the node (a run left it empty).
            shutil.rmtree(Path(FILES_ROOT) / name, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    return reports


def _run_file(
    procs: PinnaceProcs,
    client: docker.DockerClient,
    report: FileReport,
    docs: list[dict[str, Any]],
    target: Path,
    local: set[str],
) -> None:
    wanted = {
        c.get("image", "") for _, spec in _templates(docs) for c in spec.get("containers") or []
    }
    missing = sorted(wanted - local)
    report.images = f"stood in: {', '.join(missing)}" if missing else "own"
    docs, report.made = stand_in(docs, local)
    target.write_text(yaml.safe_dump_all(docs))
    applied = procs.cli("apply", "-f", str(target), check=False)
    warnings = [line for line in applied.stderr.splitlines() if line.startswith("Warning:")]
    report.warning = warnings[0].split(": ", 3)[-1][:120] if warnings else ""
    if applied.returncode != 0:
        for m in report.mounts:
            m.result = "refused: " + applied.stderr.strip().splitlines()[-1][:100]
        return
    try:
        for m in report.mounts:
            if m.kind in READ_ONLY_TYPES or m.kind.endswith("(readOnly)"):
                m.result = "read-only"
                continue
            try:
                m.result = _try_mount(procs, client, m)
            except Exception as exc:  # one mount failing is its row, not the end of the bench
                m.result = f"failed: {exc}"[:120]
    finally:
        # A claim is not deleted while a pod uses it (and `delete -f` deletes all or
        # nothing): the file without its claims first, then, once the pods are gone, all.
        first = target.with_suffix(".workloads.yaml")
        first.write_text(
            yaml.safe_dump_all([d for d in docs if d.get("kind") != "PersistentVolumeClaim"])
        )
        procs.cli("delete", "-f", str(first), check=False)
        left: list[str] = []

        def gone() -> bool:
            pods = procs.get_json("pods")["items"]
            left[:] = [
                f"{p['metadata']['name']} {p['status'].get('phase')} "
                f"{p['status'].get('reason', '')} {p['status'].get('message', '')}"
                for p in pods
            ]
            return not pods

        try:
            wait_until(f"the pods of {target.name} gone", gone, timeout=120)
        except BenchError as exc:
            raise BenchError(f"{exc}: {'; '.join(left)}") from exc
        procs.cli("delete", "-f", str(target), check=False)


def render(reports: list[FileReport], markdown: bool) -> str:
    rows = []
    for r in reports:
        mounts = "; ".join(f"{m.workload}:{m.path} ({m.kind}) {m.result}" for m in r.mounts) or "-"
        made = ", ".join(r.made) or "-"
        rows.append(
            (r.file, ", ".join(r.types), r.verdict, mounts, r.images, made, r.warning or "-")
        )
    head = (
        *("file", "volume types", "verdict", "mounts: result", "images"),
        *("made by the bench", "first warning (of the stand-in)"),
    )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    else:
        lines = [
            "\n".join(f"{h}: {c}" for h, c in zip(head, row, strict=True)) + "\n" for row in rows
        ]
    kept = sum(r.verdict == "data kept" for r in reports)
    lines.append(f"\n{len(reports)} files with volumes: {kept} run with their data kept")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated file names")
    args = parser.parse_args(argv)
    print(render(run({n for n in args.only.split(",") if n}), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
