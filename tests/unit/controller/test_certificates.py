"""The local certificate store: 0600 bundles, references refused unless whole-string valid."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from controller_stub.controller.certificates import (
    CertificateNotFound,
    LocalCertificateStore,
    lb_certificate_refs,
)

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_store_round_trip_with_private_files(tmp_path: Path) -> None:
    store = LocalCertificateStore(tmp_path / "certs")
    ref = store.add(PEM)
    assert store.get(ref) == PEM
    (path,) = (tmp_path / "certs").iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "certs").stat().st_mode) == 0o700
    store.delete(ref)
    with pytest.raises(CertificateNotFound):
        store.get(ref)


@pytest.mark.parametrize("ref", [
    "local://certificates/../../etc/passwd", "local://certificates/" + "a" * 32 + "\n",
    "https://barbican.example/v1/containers/x", "a" * 32])
def test_store_refuses_foreign_references(tmp_path: Path, ref: str) -> None:
    with pytest.raises(CertificateNotFound):
        LocalCertificateStore(tmp_path).get(ref)


def test_store_refuses_non_pem(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalCertificateStore(tmp_path).add(b"not a certificate")


def test_refs_of_listeners_and_pools_each_once() -> None:
    refs = lb_certificate_refs(
        [{"default_tls_container_ref": "a", "sni_container_refs": ["b", "a"],
          "client_ca_tls_container_ref": "c"}],
        [{"tls_container_ref": "d", "ca_tls_container_ref": "c", "crl_container_ref": "e"}])
    assert refs == ["a", "b", "c", "d", "e"]
