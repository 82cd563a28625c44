"""Full build with the default options, then boot under qemu TCG to a running agent.

Slow (about 4 minutes here: build ~2.6 min, with or without a warm cache,
boot to agent-ready ~45 s); part of ``make test``. One boot, no retry: a boot
that does not answer is a failure, printed with the guest's own journal of
the agent's units (docs/image.md). ``AMPHORA_TEST_IMAGE=/path/x.qcow2`` reuses
an image built earlier (its ``.manifest.json`` must sit beside it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller_stub import images
from controller_stub.compute.qemu import (
    BOOT_TIMEOUT,
    AmphoraVM,
    BuiltImage,
    build_image,
    existing_image,
    make_config_drive,
)
from tests.integration.glance_fixture import GlanceServer

pytestmark = [pytest.mark.image, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    reuse = os.environ.get("AMPHORA_TEST_IMAGE")
    if reuse:
        return existing_image(Path(reuse))
    if os.geteuid() != 0:
        pytest.fail("building an image needs root")
    image = build_image(tmp_path_factory.mktemp("image-out"))
    print(f"\nbuild: {image.build_seconds:.0f}s, {image.size_bytes / 2**20:.0f} MiB")
    return image


@pytest.fixture(scope="module")
def booted(built: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """The image booted to a ready agent; a failed boot prints the guest's journal."""
    iso, identity = make_config_drive(tmp_path_factory.mktemp("drive"))
    vm = AmphoraVM(built.path, iso, tmp_path_factory.mktemp("vm"))
    vm.start()
    try:
        client, info, seconds = vm.wait_for_agent(identity, timeout=BOOT_TIMEOUT)
    except BaseException:
        vm.stop()
        raise
    print(f"\nboot to agent ready: {seconds:.0f}s")
    try:
        yield vm, identity, client, info
    finally:
        vm.stop()


def test_build_outputs(built: BuiltImage) -> None:
    image = built.path
    assert image.stat().st_size > 50 * 2**20
    assert image.read_bytes()[:4] == b"QFI\xfb"  # qcow2 magic
    digest, name = Path(f"{image}.sha256").read_text().split()
    assert name == image.name
    assert digest == hashlib.sha256(image.read_bytes()).hexdigest()
    manifest = built.manifest
    assert manifest["os_distro"] == "debian" and manifest["os_release"] == "bookworm"
    assert manifest["architecture"] == "x86_64"
    assert manifest["haproxy_version"].split(".")[0] == "2"
    assert manifest["builder"]["options"]["no_sshd"] is True


@pytest.mark.boot
def test_agent_answers_info_over_mtls_with_the_manifest_versions(
        built: BuiltImage, booted: tuple) -> None:
    _vm, _identity, _client, info = booted
    manifest = built.manifest
    assert info["api_version"] == "1.0"
    assert info["haproxy_version"] == manifest["haproxy_version"]
    assert info["keepalived_version"] == manifest["keepalived_version"]
    assert info["ipvsadm_version"] == manifest["ipvsadm_version"]
    # the hostname came from the config drive, so provisioning ran
    assert info["hostname"] == "amphora-boot-test"


@pytest.mark.boot
def test_agent_details_describe_the_vm(booted: tuple) -> None:
    _vm, identity, client, _info = booted
    details = client.details()
    assert details["cpu_count"] == 2
    assert details["amphora_id"] == identity.amphora_id
    limits = details["open_file_limit"]  # raised by the haproxy-amphora element
    assert limits["soft"] >= 1048576 and limits["nr_open"] >= 1048576
    assert 600_000 < details["memory"]["total"] < 1_100_000


@pytest.mark.boot
def test_agent_refuses_clients_without_a_certificate(booted: tuple) -> None:
    vm, identity, _client, _info = booted
    context = ssl.create_default_context(cafile=str(identity.ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # Only read after the handshake: the agent's certificate_required alert is the
    # next thing on the wire, and a reset or a silent close is not a refusal.
    with socket.create_connection(("127.0.0.1", vm.port), timeout=30) as raw:
        with pytest.raises(ssl.SSLError) as err:
            with context.wrap_socket(raw, server_hostname=identity.amphora_id) as tls:
                tls.recv(1)
    assert "TLSV13_ALERT_CERTIFICATE_REQUIRED" in str(err.value)


@pytest.mark.boot
def test_guest_journal_channel_shows_the_agent_process_model(booted: tuple) -> None:
    """The debug channel a failed boot is read from works, and shows the agent's
    processes in the real image: a worker and a separate heartbeat process."""
    vm, _identity, _client, _info = booted
    expected = [r"amphora-provision", r"amphora-agent\[\d+\]: .*Booting worker with pid: \d+",
                r"amphora-agent\[\d+\]: .*heartbeat process \d+ started",
                # no heartbeat_key on the config drive: the separate process says so
                r"amphora-agent\[(\d+)\]: .* \1 ERROR .*heartbeat_key is not set"]
    deadline = time.monotonic() + 120  # the sender logs its first interval a little later
    while True:
        journal = vm.journal_text()
        missing = [p for p in expected if not re.search(p, journal)]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert missing == [], journal[-3000:]
    sender = re.search(r"heartbeat process (\d+) started", journal)
    assert sender is not None
    pid = sender.group(1)  # the error comes from that process, not the master or worker
    assert re.search(rf"amphora-agent\[{pid}\]: .* {pid} ERROR .*heartbeat_key is not set",
                     journal), journal[-3000:]


def test_built_image_is_accepted_by_glance(built: BuiltImage, glance: GlanceServer) -> None:
    """The real image passes Glance's format inspection and carries its manifest's versions."""
    tag = f"boot-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "AMPHORA_GLANCE_ENDPOINT": glance.url}
    done = subprocess.run([sys.executable, "-m", "controller_stub.cli", "image", "upload",
                           str(built.path), "--tag", tag, "--json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    uploaded = json.loads(done.stdout)
    assert uploaded["status"] == "active"
    assert uploaded["disk_format"] == "qcow2"
    assert uploaded["size"] == built.size_bytes
    for prop, key in images.MANIFEST_PROPERTIES.items():
        assert uploaded["properties"][prop] == str(built.manifest[key]), prop
    # what the image's own haproxy -vv said, and the hints for running it well
    assert uploaded["properties"]["haproxy_build_options"] == \
        built.manifest["haproxy_build_options"]
    assert "PROMEX" in uploaded["properties"]["haproxy_build_options"].split()
    for prop, value in images.PERFORMANCE_PROPERTIES.items():
        assert uploaded["properties"][prop] == value, prop
    conn = images.connect(endpoint=glance.url)
    assert images.select_image(conn, tag).id == uploaded["id"]
