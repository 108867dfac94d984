"""Pod names and template hashes, the way Kubernetes makes them.

A pod of deployment `web` is named `web-<template hash>-<5 random chars>`
(the part before the random characters cut to 58, so a name never exceeds 63,
as Kubernetes' generateName does); the hash identifies the pod template, so
pods made from an older template are told apart from current ones during a
rollout. The hash is stable across master
restarts and Python versions (sha256 of a canonical JSON form), and uses
Kubernetes' alphabet without vowels so it never spells words.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from typing import Any

from master.model import PodTemplate

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Unset optional fields are left out, so adding a new optional field to the
        # model does not change the hash of existing templates (no surprise rollout
        # after a master upgrade).
        return {
            f.name: _plain(v)
            for f in dataclasses.fields(value)
            if (v := getattr(value, f.name)) is not None
        }
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    return value


def _encode(digest: bytes, length: int) -> str:
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "".join(chars)


def template_hash(template: PodTemplate) -> str:
    """A 10-character id of a pod template; equal templates give equal ids."""
    canonical = json.dumps(_plain(template), sort_keys=True, separators=(",", ":"))
    return _encode(hashlib.sha256(canonical.encode()).digest(), 10)


def random_suffix() -> str:
    """Five characters of the alphabet, each uniformly random, from ONE draw of the
    system's randomness (a choice per character drew five: a share of every pod a
    deployment creates at thousands a second)."""
    number = secrets.randbelow(_SUFFIXES)
    chars = []
    for _ in range(5):
        number, index = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "".join(chars)


_SUFFIXES = len(_ALPHABET) ** 5


# Kubernetes' generateName: a base longer than 58 characters is cut to 58 before
# the 5 random characters, so a generated name is at most 63 (a DNS label).
MAX_GENERATED_BASE = 58


def pod_name(deployment: str, hash_: str, suffix: str) -> str:
    """A pod name as Kubernetes gives a ReplicaSet's pods: generateName
    `<deployment>-<hash>-`, cut to 58 characters, then the random suffix. A long
    deployment name loses the hash from its pod names (the pod keeps it in its
    pod-template-hash label), as in Kubernetes."""
    return f"{deployment}-{hash_}-"[:MAX_GENERATED_BASE] + suffix
