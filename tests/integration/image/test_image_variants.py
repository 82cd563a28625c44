"""Debian 13 images: HAProxy 3.0 (``--release trixie``) and 3.2 LTS from Debian's
next release (``--haproxy-apt-source``, the binary package), both on OpenSSL 3.5.

Builds each (or reuses ``AMPHORA_TEST_IMAGE_TRIXIE`` / ``AMPHORA_TEST_IMAGE_NEXT``),
boots it under qemu TCG to a ready agent that reports its HAProxy, and gives it
an HTTP/2 listener the controller's capability check allows for it: the agent plugs the VIP on a
second NIC hot-plugged after boot, validates the config with the image's own HAProxy and starts
it, and curl from this host negotiates HTTP/2 with it. Slow (a second build):
``make test-image`` only. The ``--haproxy-source`` image has no test here: the
Debian mirror this project's machines reach serves binary packages only, so
``apt-get source`` cannot fetch the source it builds (docs/image.md).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller_stub.client import AgentClient, Timeouts
from controller_stub.compute.qemu import (
    BOOT_TIMEOUT,
    VIP_ADDRESS,
    AmphoraVM,
    BuiltImage,
    build_image,
    existing_image,
    make_config_drive,
)
from controller_stub.controller.imaging import target_of
from controller_stub.images import properties_from_manifest
from haproxy_templates import render
from tests.integration.image.haproxy_roots import LB_ID, tls_lb

pytestmark = [pytest.mark.image, pytest.mark.image_variant, pytest.mark.timeout(5400)]

NEXT_RELEASE = "deb http://deb.debian.org/debian sid main"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
VARIANTS = {
    # name: (reuse variable, image-create.sh options, HAProxy branch, native QUIC)
    "trixie": ("AMPHORA_TEST_IMAGE_TRIXIE", ("--release", "trixie"), "3.0", False),
    # HAProxy 3.2 LTS from Debian's next release, the binary package
    "next": ("AMPHORA_TEST_IMAGE_NEXT", ("--release", "trixie", "--haproxy-apt-source",
                                         NEXT_RELEASE, "--haproxy-key", DEBIAN_KEYRING),
             "3.2", True),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[str, BuiltImage]:
    name = request.param
    reuse, options, _branch, _native = VARIANTS[name]
    if os.environ.get(reuse):
        return name, existing_image(Path(os.environ[reuse]))
    image = build_image(tmp_path_factory.mktemp(f"image-{name}"), name=f"amphora-{name}",
                        extra_args=options)
    print(f"\n{name} build: {image.build_seconds:.0f}s, {image.size_bytes / 2**20:.0f} MiB")
    return name, image


@pytest.fixture(scope="module")
def booted(variant: tuple[str, BuiltImage],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    name, built = variant
    iso, identity = make_config_drive(tmp_path_factory.mktemp(f"drive-{name}"))
    vm = AmphoraVM(built.path, iso, tmp_path_factory.mktemp(f"vm-{name}"), vip_ports=(443,))
    vm.start()
    try:
        _client, info, seconds = vm.wait_for_agent(identity, timeout=BOOT_TIMEOUT)
    except BaseException:
        vm.stop()
        raise
    print(f"\n{name} boot to agent ready: {seconds:.0f}s")
    try:
        yield name, built, identity, vm, info
    finally:
        vm.stop()


def test_manifest_records_the_newer_haproxy_and_its_build(
        variant: tuple[str, BuiltImage]) -> None:
    name, built = variant
    _reuse, _options, branch, native = VARIANTS[name]
    manifest = built.manifest
    assert (manifest["os_release"], manifest["os_version"]) == ("trixie", "13")
    assert manifest["haproxy_version"].startswith(branch + ".")
    assert manifest["openssl_version"].startswith("3.")
    assert int(manifest["openssl_version"].split(".")[1]) >= 5
    options = manifest["haproxy_build_options"].split()
    assert {"OPENSSL", "PROMEX", "QUIC"} <= set(options)
    assert ("QUIC_OPENSSL_COMPAT" in options) is not native
    assert manifest["haproxy_services"] == "prometheus-exporter"
    assert manifest["builder"]["options"].get("haproxy_apt_source") == (
        NEXT_RELEASE if name == "next" else None)


@pytest.mark.boot
def test_agent_reports_the_haproxy_and_serves_an_http2_listener(booted: tuple) -> None:
    name, built, identity, vm, info = booted
    assert info["haproxy_version"] == built.manifest["haproxy_version"]
    # haproxy -c and the start run under TCG emulation: give them minutes, not seconds
    client = AgentClient("127.0.0.1", identity.amphora_id, ca_file=str(identity.ca_file),
                         client_cert=str(identity.client_cert), port=vm.port, retries=0,
                         timeouts=Timeouts(connect=10.0, read=300.0))
    # exactly what the controller does before it boots this image: check the request
    target = target_of(properties_from_manifest(built.manifest))
    lb = {**tls_lb(["h2"]), "vip_address": VIP_ADDRESS}  # the address plugged below
    config = render(lb, amphora_id=identity.amphora_id, target=target)
    assert "tune.h2.fe.glitches-threshold" in config and 'alpn "h2"' in config
    vm.attach_vip_nic()  # after boot, as Nova attaches the VIP port
    # until the guest has the new NIC the agent answers 404 "not found", which
    # the client retries as Octavia's controller does
    plugging = AgentClient("127.0.0.1", identity.amphora_id, ca_file=str(identity.ca_file),
                           client_cert=str(identity.client_cert), port=vm.port, retries=120,
                           retry_interval=1.0, timeouts=Timeouts(connect=10.0, read=300.0))
    plugging.plug_vip(VIP_ADDRESS, vm.vip_plug_body())
    pem = _server_pem(Path(built.path).parent)
    client.upload_cert(LB_ID, "default.pem", pem)
    client.upload_haproxy(identity.amphora_id, LB_ID, config)  # validated by its haproxy -c
    client.lb_action(LB_ID, "start")
    listeners = {entry["uuid"]: entry for entry in client.listeners()}
    listener_id = lb["listeners"][0]["id"]
    assert listeners[listener_id]["status"] == "ACTIVE", (name, listeners)
    assert listeners[listener_id]["type"] == "TERMINATED_HTTPS"
    # a real HTTP/2 exchange with the image's HAProxy; the pool's member does not
    # exist in the VM, so HAProxy itself answers, over h2, that none is available
    out = subprocess.run(
        ["curl", "-sk", "--http2", "--max-time", "120", "-o", "/dev/null",
         "-w", "%{http_version} %{http_code}", f"https://127.0.0.1:{vm.vip_ports[443]}/"],
        capture_output=True, text=True, check=False, timeout=180)
    assert out.stdout == "2 503", (out.returncode, out.stdout, out.stderr, vm.diagnostics())


def _server_pem(workdir: Path) -> bytes:
    key, cert = workdir / "h2-key.pem", workdir / "h2-cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                    "/CN=www.example.com", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert.read_bytes() + key.read_bytes()
