"""What controllers ask for: plain data, applied by the controller manager.

Every action carries a `reason` (a CamelCase word, as Kubernetes events use) and
a human message; the manager records both as an Event so `pinnace get events`
shows why a pod appeared, moved or went away.
"""

from __future__ import annotations

from dataclasses import dataclass

from master.model import DeploymentStatus, Pod


@dataclass(frozen=True, slots=True)
class CreatePod:
    pod: Pod
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class DeletePod:
    """Ask for a pod's graceful removal (the agent stops it, then it is forgotten)."""

    name: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class SetDeploymentStatus:
    name: str
    status: DeploymentStatus


Action = CreatePod | DeletePod | SetDeploymentStatus
