"""The agent's side of issue 11's environment: a resolved value never makes a container
stale, a missing ConfigMap holds a container back (CreateContainerConfigError) without
stopping one that runs, and the container config carries the expanded environment."""

from __future__ import annotations

from dataclasses import replace

from agent.containers import container_config
from agent.model import ContainerPort, ContainerSpec, EnvVar, PodAssignment, PodSpec, spec_hash
from agent.runtime.port import ContainerInfo
from agent.status import pod_status
from agent.sync import sync

NOW = 1_700_000_000.0
WEB = ContainerSpec(
    "web",
    "pinnace/httpd:latest",
    command=("httpd", "-p", "$(PORT)"),
    args=("--mode=$(MODE)", "$$(MODE)"),
    env=(
        EnvVar("MODE", "prod", from_source=True),
        EnvVar("PORT", "80"),
        EnvVar("URL", "x:$(PORT)"),
    ),
    ports=(ContainerPort(80),),
)


def _pod(spec: ContainerSpec = WEB) -> PodAssignment:
    return PodAssignment("web-1", 3, PodSpec((spec,)))


def _running(spec: ContainerSpec) -> ContainerInfo:
    return ContainerInfo(
        id="c1",
        name="pinnace-n1-web-1-web",
        image=spec.image,
        state="running",
        labels={
            "pinnace.node": "n1",
            "pinnace.pod": "web-1",
            "pinnace.container": "web",
            "pinnace.epoch": "3",
            "pinnace.spec-hash": spec_hash(spec),
        },
        started_at=NOW - 10,
    )


def test_plain_specs_hash_as_before_the_env_fields_existed() -> None:
    # The value agents before issue 11 computed for this spec: upgrading restarts nothing.
    spec = ContainerSpec(
        "web",
        "pinnace/httpd:latest",
        command=("httpd",),
        env=(EnvVar("A", "1"), EnvVar("B", "$(A)")),
        ports=(ContainerPort(80),),
    )

    assert spec_hash(spec) == "3747d39ab487f81a"


def test_a_changed_config_map_value_or_a_config_error_does_not_restart_a_running_container() -> (
    None
):
    changed = replace(WEB, env=(replace(WEB.env[0], value="staging"), *WEB.env[1:]))
    missing = replace(WEB, config_error='configmap "settings" not found')

    for spec in (changed, missing):
        result = sync({"web-1": _pod(spec)}, [_running(WEB)], NOW, {})
        assert result.actions == ()
    assert spec_hash(replace(WEB, env=(replace(WEB.env[1], value="81"),))) != spec_hash(WEB)


def test_a_container_waiting_for_its_config_starts_nothing_and_says_why() -> None:
    spec = replace(WEB, config_error='configmap "settings" not found')

    result = sync({"web-1": _pod(spec)}, [], NOW, {})
    report = pod_status(_pod(spec), [], {}, NOW, "127.0.0.1")

    assert result.actions == ()
    (c,) = report.containers
    assert (report.phase, c.state, c.reason, c.message) == (
        "Pending",
        "waiting",
        "CreateContainerConfigError",
        'configmap "settings" not found',
    )
    assert report.reason == "CreateContainerConfigError"


def test_container_config_gets_the_expanded_environment_command_and_args() -> None:
    config = container_config("n1", "127.0.0.1", _pod(), WEB, 0)

    assert dict(config.env) == {"MODE": "prod", "PORT": "80", "URL": "x:80"}
    assert config.entrypoint == ("httpd", "-p", "80")
    assert config.cmd == ("--mode=prod", "$(MODE)")


def test_stdin_and_tty_count_only_when_set() -> None:
    # Specs from before attach hash as they did (no restart on upgrade); set, they change it.
    assert spec_hash(replace(WEB, stdin=False, tty=False)) == spec_hash(WEB)
    assert spec_hash(replace(WEB, stdin=True)) != spec_hash(WEB)
    attached = replace(WEB, stdin=True, tty=True)
    config = container_config("n1", "127.0.0.1", _pod(attached), attached, 0)
    assert (config.stdin_open, config.tty) == (True, True)
