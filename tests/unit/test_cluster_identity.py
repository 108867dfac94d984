"""The shared cluster identity: sealed under the cluster secret, made once, loaded after."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from master.pki.ca import CertificateAuthority, cert_pem, key_pem
from master.pki.identity import (
    ClusterIdentity,
    IdentityError,
    check_secret,
    open_identity,
    seal_identity,
)
from master.pki.shared import IDENTITY_META, SECRET_FILE, cluster_secret, load_or_create
from master.store.memory import MemoryStore
from master.store.port import StoreError

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SECRET = "correct horse battery staple"


def identity() -> ClusterIdentity:
    ca = CertificateAuthority.create(NOW)
    return ClusterIdentity(ca.pem, key_pem(ca.key), b"admin-cert", b"admin-key", b"k" * 32)


def test_a_sealed_identity_opens_with_its_secret_only() -> None:
    original = identity()

    envelope = seal_identity(original, SECRET)

    assert open_identity(envelope, SECRET) == original
    assert b"PRIVATE KEY" not in envelope.encode()
    with pytest.raises(IdentityError, match="does not open this cluster's identity"):
        open_identity(envelope, SECRET + "!")


def test_a_short_secret_is_refused_with_its_source() -> None:
    with pytest.raises(IdentityError, match=r"^s.txt: the cluster secret must be at least 16"):
        check_secret("  short \n", "s.txt")
    assert check_secret(f"  {SECRET}\n", "s.txt") == SECRET


def test_the_first_master_makes_the_identity_and_the_next_loads_the_same(tmp_path: Path) -> None:
    store = MemoryStore()

    first = load_or_create(store, SECRET, tmp_path / "a", NOW)
    second = load_or_create(store, SECRET, tmp_path / "b", NOW)

    assert first == second
    assert len(first.secrets_key) == 32
    assert b"BEGIN CERTIFICATE" in first.ca_cert_pem
    with pytest.raises(StoreError, match="--cluster-secret-file the cluster's other masters use"):
        load_or_create(store, "another secret, 24 chars", tmp_path / "c", NOW)


def test_a_first_master_keeps_the_ca_and_secrets_key_of_its_data_dir(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(NOW)
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(cert_pem(ca.cert))
    (tmp_path / "pki" / "ca.key").write_bytes(key_pem(ca.key))
    (tmp_path / "secrets.key").write_bytes(b"s" * 32)

    made = load_or_create(MemoryStore(), SECRET, tmp_path, NOW)

    assert made.ca_cert_pem == cert_pem(ca.cert)
    assert made.secrets_key == b"s" * 32


def own_ca(data_dir: Path) -> CertificateAuthority:
    """A CA in a data dir, as a master made it before masters shared one identity."""
    ca = CertificateAuthority.create(NOW)
    (data_dir / "pki").mkdir(parents=True)
    (data_dir / "pki" / "ca.crt").write_bytes(cert_pem(ca.cert))
    (data_dir / "pki" / "ca.key").write_bytes(key_pem(ca.key))
    return ca


def test_an_old_cluster_takes_the_ca_of_the_master_that_ran_it_never_a_new_one(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    store.meta_set("resource_version", "42")  # objects written before the shared identity
    original = own_ca(tmp_path / "old")

    with pytest.raises(StoreError, match=r"has no CA: start the master that ran this cluster"):
        load_or_create(store, SECRET, tmp_path / "new", NOW)
    assert store.meta_get(IDENTITY_META) is None  # nothing half-made
    made = load_or_create(store, SECRET, tmp_path / "old", NOW)
    joined = load_or_create(store, SECRET, tmp_path / "new", NOW)

    assert made.ca_cert_pem == joined.ca_cert_pem == cert_pem(original.cert)


def test_a_master_with_a_ca_of_its_own_that_is_not_the_clusters_refuses_to_start(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    load_or_create(store, SECRET, tmp_path / "first", NOW)
    own_ca(tmp_path / "other")

    with pytest.raises(StoreError, match=r"holds a CA of this master's own .* move .* aside"):
        load_or_create(store, SECRET, tmp_path / "other", NOW)
    # Its CA moved aside, it takes the cluster's.
    (tmp_path / "other" / "pki").rename(tmp_path / "other" / "pki.old")
    assert load_or_create(store, SECRET, tmp_path / "other", NOW) == load_or_create(
        store, SECRET, tmp_path / "first", NOW
    )


def test_the_cluster_secret_is_made_once_then_required(tmp_path: Path) -> None:
    store = MemoryStore()
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()

    made = cluster_secret(None, first_dir, store)
    load_or_create(store, made, first_dir, NOW)
    again = cluster_secret(None, first_dir, store)

    assert again == made
    assert (first_dir / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert store.meta_get(IDENTITY_META) is not None
    with pytest.raises(StoreError, match="start this master with --cluster-secret-file FILE"):
        cluster_secret(None, second_dir, store)
    given = tmp_path / "given"
    given.write_text(made + "\n")
    assert cluster_secret(given, second_dir, store) == made
