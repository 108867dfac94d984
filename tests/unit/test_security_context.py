"""securityContext: parsed at both levels, merged as the kubelet merges them, sent to the
agent, turned into the engine's user and groups, runAsNonRoot refused in the kubelet's
words, and the fsGroup owning the pod's volumes (the real engine: test_config_volumes.py)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from agent.containers import container_config
from agent.convert import assignment_from_proto
from agent.model import ContainerSpec, PodAssignment, PodSpec, Security, Volume, VolumeFile
from agent.runtime.fake_runtime import FakeRuntime
from agent.security import engine_groups, engine_user, image_uid, non_root_refusal
from agent.status import pod_status
from agent.sync import record_config_failure
from agent.volume_files import VolumeFiles
from agent.volume_owner import (
    ALWAYS,
    ON_ROOT_MISMATCH,
    needs_walk,
    owned_mode,
    root_matches,
    set_volume_ownership,
)
from master.api.convert import assignment_to_proto
from master.manifest.security import effective
from master.model import Container, ObjectMeta, Pod, SecurityContext
from master.model import PodSpec as MasterPodSpec
from tests.unit.test_manifest_deployment import C0, PREFIX, only_deployment
from tests.unit.test_manifest_support import DEPLOYMENT, error, mutate, parse

POD = "spec.template.spec.securityContext"


def test_both_levels_are_read_and_the_rest_warned() -> None:
    doc = mutate(
        DEPLOYMENT,
        POD,
        {
            "runAsUser": 1000,
            "fsGroup": 2000,
            "supplementalGroups": [4000],
            "seccompProfile": {"type": "x"},
        },
    )
    doc = mutate(doc, f"{C0}.securityContext",
                 {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                  "capabilities": {"drop": ["ALL"]}})  # fmt: skip

    spec = only_deployment(doc).template.spec

    assert spec.security_context == SecurityContext(
        run_as_user=1000, fs_group=2000, supplemental_groups=(4000,)
    )
    assert spec.containers[0].security_context == SecurityContext(
        run_as_non_root=True, read_only_root_filesystem=True
    )
    assert parse(doc).warnings == (
        PREFIX + f'Deployment "web": {C0}.securityContext.capabilities, {POD}.seccompProfile: '
        "not supported yet, ignored",
    )


def test_mistakes_name_the_field() -> None:
    assert error(mutate(DEPLOYMENT, POD, {"runAsUser": -1})) == (
        PREFIX + f"{POD}.runAsUser: must be an integer from 0 to 2147483647, got -1"
    )
    assert error(mutate(DEPLOYMENT, f"{C0}.securityContext", {"runAsNonRoot": "yes"})) == (
        PREFIX + f"{C0}.securityContext.runAsNonRoot: must be true or false"
    )
    assert error(mutate(DEPLOYMENT, f"{C0}.securityContext", {"fsGroup": 1})) == (
        PREFIX + f'{C0}.securityContext.fsGroup: unknown field (did you mean "runAsGroup"?)'
    )


def test_a_container_s_own_fields_win_and_the_groups_are_the_pod_s() -> None:
    pod = SecurityContext(run_as_user=1, run_as_group=2, run_as_non_root=True, fs_group=3,
                          supplemental_groups=(4,))  # fmt: skip
    mine = SecurityContext(run_as_user=10, run_as_non_root=False)

    assert effective(pod, mine) == SecurityContext(10, 2, False, None, 3, None, (4,))


def _pod(pod_ctx: SecurityContext | None, ctx: SecurityContext | None) -> Pod:
    spec = MasterPodSpec(containers=(Container("web", "img", security_context=ctx),),
                         security_context=pod_ctx)  # fmt: skip
    return Pod(meta=ObjectMeta(name="p", uid="u-1"), spec=spec)


def test_the_agent_gets_the_merged_context_the_fs_group_and_the_pod_uid() -> None:
    pod = _pod(SecurityContext(run_as_group=2, fs_group=3, supplemental_groups=(4,)),
               SecurityContext(run_as_user=10, read_only_root_filesystem=True))  # fmt: skip

    got = assignment_from_proto(assignment_to_proto(pod, stop=False))
    plain = assignment_from_proto(assignment_to_proto(_pod(None, None), stop=False))

    assert got.spec.containers[0].security == Security(10, 2, False, True, (4, 3))
    assert (got.spec.fs_group, got.uid) == (3, "u-1")
    assert (plain.spec.containers[0].security, plain.spec.fs_group) == (None, None)
    # fsGroupChangePolicy reaches the agent; unset is Always (Kubernetes' default).
    assert got.spec.fs_group_change_policy == plain.spec.fs_group_change_policy == ALWAYS
    mismatch = _pod(SecurityContext(fs_group=3, fs_group_change_policy=ON_ROOT_MISMATCH), None)
    spec = assignment_from_proto(assignment_to_proto(mismatch, stop=False)).spec
    assert spec.fs_group_change_policy == ON_ROOT_MISMATCH


def test_the_engine_user_and_groups() -> None:
    assert engine_user(None, "nginx") == ""
    assert engine_user(Security(run_as_user=1000), "") == "1000"
    assert engine_user(Security(run_as_user=1000, run_as_group=3000), "") == "1000:3000"
    assert engine_user(Security(run_as_group=3000), "nginx:nginx") == "nginx:3000"
    assert engine_user(Security(run_as_group=3000), "") == "0:3000"
    assert engine_groups(Security(supplemental_groups=(4, 3, 4))) == ("4", "3")
    assert image_uid("") == (0, "") and image_uid("101:101") == (101, "")
    assert image_uid("nginx") == (None, "nginx")


def _assignment(security: Security | None) -> PodAssignment:
    spec = ContainerSpec("web", "img", security=security)
    return PodAssignment("ns/p", 1, PodSpec((spec,)), namespace="ns", uid="u-1")


def test_run_as_non_root_refuses_in_the_kubelet_s_words() -> None:
    a = _assignment(None)
    non_root = Security(run_as_non_root=True)
    which = '(pod: "p_ns(u-1)", container: web)'

    assert non_root_refusal(non_root, "", a, "web") == (
        f"container has runAsNonRoot and image will run as root {which}"
    )
    assert non_root_refusal(non_root, "0:0", a, "web").endswith("will run as root " + which)
    assert non_root_refusal(non_root, "nginx", a, "web") == (
        "container has runAsNonRoot and image has non-numeric user (nginx), cannot verify "
        f"user is non-root {which}"
    )
    assert non_root_refusal(Security(run_as_user=0, run_as_non_root=True), "1", a, "web") == (
        f"container's runAsUser breaks non-root policy {which}"
    )
    assert non_root_refusal(non_root, "1000", a, "web") == ""
    assert non_root_refusal(Security(run_as_user=5, run_as_non_root=True), "", a, "web") == ""
    assert non_root_refusal(Security(run_as_user=0), "", a, "web") == ""


def test_the_container_config_carries_user_groups_and_read_only_root() -> None:
    a = _assignment(
        Security(run_as_user=1, supplemental_groups=(2,), read_only_root_filesystem=True)
    )

    config = container_config("n1", "127.0.0.1", a, a.spec.containers[0], 0)

    assert (config.user, config.group_add, config.read_only) == ("1", ("2",), True)


def test_a_refused_container_waits_in_create_container_config_error_with_the_sentence() -> None:
    a = _assignment(Security(run_as_non_root=True))
    backoff = record_config_failure({}, (a.name, "web"), 100.0, "container has runAsNonRoot")

    report = pod_status(a, [], backoff, 100.0, "127.0.0.1")

    (status,) = report.containers
    assert (status.state, status.reason, status.message) == (
        "waiting",
        "CreateContainerConfigError",
        "container has runAsNonRoot",
    )


def test_the_worker_asks_the_image_s_user_only_when_a_decision_needs_it() -> None:
    runtime = FakeRuntime("n1")
    runtime.engine.present_images.add("img")
    runtime.engine.image_users["img"] = "1000"

    assert asyncio.run(runtime.image_user("img")) == "1000"


def test_fs_group_bits_are_the_kubelet_s() -> None:
    assert owned_mode(0o755, is_dir=True) == 0o2775
    assert owned_mode(0o644, is_dir=False) == 0o664
    assert owned_mode(0o400, is_dir=False, read_only=True) == 0o440
    assert root_matches(stat.S_IFDIR | 0o2775, 7, 7)
    assert not root_matches(stat.S_IFDIR | 0o2775, 8, 7)
    assert not root_matches(stat.S_IFDIR | 0o755, 7, 7)


def test_fs_group_change_policy_walks_always_or_on_a_root_mismatch_only() -> None:
    matching, bare = stat.S_IFDIR | 0o2775, stat.S_IFDIR | 0o755
    assert needs_walk(ALWAYS, matching, 7, 7)  # Always: every mount
    assert needs_walk("", matching, 7, 7)  # anything else reads as Always (the default)
    assert not needs_walk(ON_ROOT_MISMATCH, matching, 7, 7)
    assert needs_walk(ON_ROOT_MISMATCH, matching, 8, 7)
    assert needs_walk(ON_ROOT_MISMATCH, bare, 7, 7)


def test_the_fs_group_owns_a_volume_tree_as_its_change_policy_says(tmp_path: Path) -> None:
    gid = os.getgid()
    (tmp_path / "d").mkdir(mode=0o755)
    (tmp_path / "d" / "f").write_text("x")
    os.chmod(tmp_path / "d" / "f", 0o600)
    os.chmod(tmp_path, 0o755)

    set_volume_ownership(str(tmp_path), gid, policy=ON_ROOT_MISMATCH)

    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o2775
    assert stat.S_IMODE((tmp_path / "d" / "f").stat().st_mode) == 0o660
    os.chmod(tmp_path / "d" / "f", 0o600)  # the root matches now: no walk
    set_volume_ownership(str(tmp_path), gid, policy=ON_ROOT_MISMATCH)
    assert stat.S_IMODE((tmp_path / "d" / "f").stat().st_mode) == 0o600
    set_volume_ownership(str(tmp_path), gid)  # Always, the default: the whole tree again
    assert stat.S_IMODE((tmp_path / "d" / "f").stat().st_mode) == 0o660


def test_config_files_are_the_fs_group_s_and_group_readable(tmp_path: Path) -> None:
    gid = os.getgid()
    files = (VolumeFile("key", b"v", 0o400),)
    spec = PodSpec((ContainerSpec("web", "img"),), volumes=(Volume("s", "secret", files=files),),
                   fs_group=gid)  # fmt: skip

    VolumeFiles(str(tmp_path), "n1").sync([PodAssignment("p", 1, spec)])

    st = (tmp_path / "n1" / "p" / "s" / "key").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o440, gid)
