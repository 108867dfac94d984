"""Kubernetes' name rules: object names, label keys and values, port and env names.

These mirror k8s.io/apimachinery/pkg/util/validation so that a manifest is valid
here exactly when Kubernetes would accept it. Each check raises a ManifestError
at the given field with the rule spelled out, since "invalid name" alone rarely
tells the user what to change.
"""

from __future__ import annotations

import re

from master.manifest.errors import Where, describe

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(rf"^{_DNS1123_LABEL}\Z")
_DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*\Z")
_DNS1035_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_IANA_SVC_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")
_ENV_NAME_RE = re.compile(r"^[\x20-\x3c\x3e-\x7e]+\Z")

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
ANNOTATIONS_MAX_BYTES = 256 * 1024


def _too_long(value: str, limit: int, where: Where) -> None:
    if len(value) > limit:
        raise where.error(f"must be at most {limit} characters, got {len(value)}")


def check_dns1123_label(value: str, where: Where) -> None:
    """Container names, service port names: "web", "my-app-1"."""
    _too_long(value, DNS1123_LABEL_MAX, where)
    if not _DNS1123_LABEL_RE.match(value):
        raise where.error(
            "must be a DNS-1123 label (lowercase letters, digits and '-', starting and "
            f"ending with a letter or digit), got {describe(value)}"
        )


def check_dns1123_subdomain(value: str, where: Where) -> None:
    """Deployment names: DNS-1123 labels joined by dots, at most 253 characters."""
    _too_long(value, DNS1123_SUBDOMAIN_MAX, where)
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        raise where.error(
            "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting "
            f"and ending with a letter or digit), got {describe(value)}"
        )


def check_dns1035_label(value: str, where: Where) -> None:
    """Service names: a DNS-1123 label that starts with a letter."""
    _too_long(value, DNS1123_LABEL_MAX, where)
    if not _DNS1035_LABEL_RE.match(value):
        raise where.error(
            "must be a DNS-1035 label (lowercase letters, digits and '-', starting with a "
            f"letter and ending with a letter or digit), got {describe(value)}"
        )


def check_qualified_name(key: str, where: Where) -> None:
    """Label and annotation keys: an optional DNS subdomain prefix, '/', and a name."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            raise where.error("key prefix before '/' must not be empty")
        if len(prefix) > DNS1123_SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN_RE.match(prefix):
            raise where.error(
                f"key prefix before '/' must be a DNS-1123 subdomain, got {describe(prefix)}"
            )
    if not name:
        raise where.error("key name must not be empty")
    if len(name) > DNS1123_LABEL_MAX:
        raise where.error(f"key name must be at most {DNS1123_LABEL_MAX} characters")
    if not _QUALIFIED_NAME_RE.match(name):
        raise where.error(
            "key name must consist of letters, digits, '-', '_' or '.', starting and "
            f"ending with a letter or digit, got {describe(name)}"
        )


def check_label_value(value: str, where: Where) -> None:
    _too_long(value, LABEL_VALUE_MAX, where)
    if value and not _QUALIFIED_NAME_RE.match(value):
        raise where.error(
            "must be empty or consist of letters, digits, '-', '_' or '.', starting and "
            f"ending with a letter or digit, got {describe(value)}"
        )


def check_labels(labels: dict[str, str], where: Where) -> None:
    for key, value in labels.items():
        check_qualified_name(key, where.key(key))
        check_label_value(value, where.key(key))


def check_annotations(annotations: dict[str, str], where: Where) -> None:
    total = 0
    for key, value in annotations.items():
        check_qualified_name(key, where.key(key))
        total += len(key.encode()) + len(value.encode())
    if total > ANNOTATIONS_MAX_BYTES:
        raise where.error(f"must be at most {ANNOTATIONS_MAX_BYTES} bytes in total, got {total}")


def check_port_name(value: str, where: Where) -> None:
    """IANA service names (container port names, named targetPorts): "http", "metrics-1"."""
    if len(value) > 15:
        raise where.error(f"must be at most 15 characters, got {describe(value)}")
    if not _IANA_SVC_NAME_RE.match(value) or "--" in value:
        raise where.error(
            "must be an IANA service name (lowercase letters, digits and '-', no '--', "
            f"starting and ending with a letter or digit), got {describe(value)}"
        )
    if not any(c.isalpha() for c in value):
        raise where.error(f"must contain at least one letter, got {describe(value)}")


def check_env_name(value: str, where: Where) -> None:
    if not _ENV_NAME_RE.match(value):
        raise where.error(
            f"must be printable ASCII characters other than '=', got {describe(value)}"
        )
