"""The stateful example (examples/redis/) is what the README and the demo say it is.

The demo (compose/demo.sh) applies the directory as it is, execs `redis-cli` in pod redis-0's
container and expects the key back after the container and its agent are killed: that only
holds when the files parse without a warning into one StatefulSet `redis` of one replica
whose claim template `data` (ReadWriteOnce, 64Mi) is mounted at /data, where the image keeps
its append-only file, and a headless Service that the set names and that selects its pods.
"""

from __future__ import annotations

import re

from master.manifest.documents import parse_manifests
from master.model import Service, StatefulSet
from tests.support import REPO

EXAMPLE = REPO / "examples" / "redis"
BUILD = REPO / "compose" / "images" / "build.sh"
DOCKERFILE = REPO / "compose" / "images" / "redis" / "Dockerfile"


def _parsed() -> tuple[StatefulSet, Service, tuple[str, ...]]:
    files = [(str(p), p.read_bytes()) for p in sorted(EXAMPLE.glob("*.yaml"))]
    parsed = parse_manifests(files)
    sets = [o for o in parsed.objects if isinstance(o, StatefulSet)]
    services = [o for o in parsed.objects if isinstance(o, Service)]
    assert len(sets) == 1 and len(services) == 1 and len(parsed.objects) == 2, parsed.objects
    return sets[0], services[0], parsed.warnings


def test_the_example_parses_without_warnings() -> None:
    _, _, warnings = _parsed()
    assert warnings == ()


def test_one_redis_with_a_64mi_read_write_once_claim_at_data() -> None:
    sts, _, _ = _parsed()
    assert (sts.meta.name, sts.replicas) == ("redis", 1)
    (claim,) = sts.claim_templates
    assert (claim.name, claim.access_modes, claim.storage_bytes) == (
        "data",
        ("ReadWriteOnce",),
        64 * 1024 * 1024,
    )
    (container,) = sts.template.spec.containers
    assert container.image == "pinnace/redis:latest"
    assert [(m.name, m.mount_path) for m in container.volume_mounts] == [("data", "/data")]
    # Its data lands on the claim: an append-only file in the mounted directory.
    command = container.command + container.args
    assert command[command.index("--dir") + 1] == "/data"
    assert command[command.index("--appendonly") + 1] == "yes"


def test_the_headless_service_is_the_sets_and_selects_its_pods() -> None:
    sts, service, _ = _parsed()
    assert service.headless
    assert sts.service_name == service.meta.name
    assert service.selector.items() <= sts.template.labels.items()
    assert [p.port for p in service.ports] == [6379]


def test_the_image_is_one_build_sh_makes_with_the_same_defaults() -> None:
    script = BUILD.read_text()
    assert "redis) build_redis ;;" in script
    assert re.search(r"tag=pinnace/redis:latest\b", script)
    # Run without args (docker run pinnace/redis:latest) it keeps its data the same way.
    cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE.read_text(), re.M)
    assert cmd is not None
    sts, _, _ = _parsed()
    (container,) = sts.template.spec.containers
    assert cmd.group(1) == "[" + ", ".join(f'"{a}"' for a in container.args) + "]"
