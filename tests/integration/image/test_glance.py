"""Upload, tag, list and select amphora images against a real Glance v2 API."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from controller_stub import images
from tests.integration.glance_fixture import GlanceServer, free_port

from .conftest import MakeImage

OWNER_A = uuid.uuid4().hex
OWNER_B = uuid.uuid4().hex


def unique_tag() -> str:
    return f"flavor-{uuid.uuid4().hex[:8]}"


def _past(created_at: str) -> None:
    """Wait until the clock has left the second Glance stamped on an image, so an
    image uploaded next is newer (Glance's created_at has one-second resolution)."""
    assert created_at, "Glance returned no created_at"
    stamp = datetime.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    deadline = time.monotonic() + 10
    while datetime.datetime.now(datetime.UTC) < stamp + datetime.timedelta(seconds=1):
        assert time.monotonic() < deadline, f"the clock never passed {created_at}"
        time.sleep(0.05)


def test_upload_sets_formats_tags_and_manifest_properties(
        glance: GlanceServer, glance_conn: Any, make_image: MakeImage) -> None:
    tag = unique_tag()
    image = make_image()
    info = images.upload_image(glance_conn, image, tags=[tag])
    assert info.status == "active"
    assert set(info.tags) == {"amphora", tag}
    # what Glance itself stored, read back over plain HTTP
    raw = requests.get(f"{glance.url}/v2/images/{info.id}", timeout=10).json()
    manifest = json.loads(Path(f"{image}.manifest.json").read_text())
    assert raw["disk_format"] == "qcow2"
    assert raw["container_format"] == "bare"
    assert raw["status"] == "active"
    assert raw["size"] == image.stat().st_size
    assert raw["os_hash_algo"] == "sha512"
    assert raw["os_hash_value"] == hashlib.sha512(image.read_bytes()).hexdigest()
    for prop, key in images.MANIFEST_PROPERTIES.items():
        assert raw[prop] == manifest[key], prop
    assert raw["amphora_agent_git_revision"] == "abc"
    assert sorted(raw["tags"]) == sorted(["amphora", tag])


def test_newest_active_image_per_tag_is_selected(
        glance_conn: Any, make_image: MakeImage) -> None:
    tag, other = unique_tag(), unique_tag()
    first = images.upload_image(glance_conn, make_image("old"), tags=[tag])
    _past(first.created_at)
    second = images.upload_image(glance_conn, make_image("new"), tags=[tag])
    _past(second.created_at)
    elsewhere = images.upload_image(glance_conn, make_image("elsewhere"), tags=[other])
    # a newer image with the tag that never became active must not be chosen
    queued = glance_conn.image.create_image(name="queued", disk_format="qcow2",
                                            container_format="bare", tags=["amphora", tag])
    listed = images.list_images(glance_conn, tag)
    assert [i.id for i in listed] == [queued.id, second.id, first.id]
    assert listed[1].properties["haproxy_version"] == "2.6.12-1+deb12u2"
    assert images.select_image(glance_conn, tag).id == second.id
    assert images.select_image(glance_conn, other).id == elsewhere.id


def test_owner_filter(glance_conn: Any, make_image: MakeImage) -> None:
    tag = unique_tag()
    mine = images.upload_image(glance_conn, make_image("a"), tags=[tag], owner=OWNER_A)
    _past(mine.created_at)
    theirs = images.upload_image(glance_conn, make_image("b"), tags=[tag], owner=OWNER_B)
    assert images.select_image(glance_conn, tag).id == theirs.id
    assert images.select_image(glance_conn, tag, owner=OWNER_A).id == mine.id
    assert [i.id for i in images.list_images(glance_conn, tag, owner=OWNER_B)] == [theirs.id]
    with pytest.raises(images.ImageError, match=r"no active image tagged .* owned by"):
        images.select_image(glance_conn, tag, owner=uuid.uuid4().hex)


def test_no_image_for_a_tag_is_a_clear_error(glance_conn: Any) -> None:
    with pytest.raises(images.ImageError, match="no active image tagged 'nothing-here'"):
        images.select_image(glance_conn, "nothing-here")


def test_damaged_image_is_not_uploaded(glance: GlanceServer, glance_conn: Any,
                                       make_image: MakeImage) -> None:
    tag = unique_tag()
    image = make_image()
    with open(image, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(images.ImageError, match="damaged"):
        images.upload_image(glance_conn, image, tags=[tag])
    assert images.list_images(glance_conn, tag) == []


def test_glance_rejecting_the_data_leaves_no_record(glance_conn: Any, tmp_path: Path,
                                                    make_image: MakeImage) -> None:
    tag = unique_tag()
    image = make_image()
    fake = tmp_path / "not-really.qcow2"
    fake.write_bytes(b"this is not a qcow2 image" * 100)
    Path(f"{fake}.manifest.json").write_text(Path(f"{image}.manifest.json").read_text())
    with pytest.raises(images.GlanceUnavailable, match="Glance refused to upload"):
        images.upload_image(glance_conn, fake, tags=[tag])
    assert images.list_images(glance_conn, tag) == []


def test_unreachable_glance_is_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    conn = images.connect(endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(images.GlanceUnavailable, match="cannot reach Glance to list images"):
        images.list_images(conn, "amphora")


class _Refuse(BaseHTTPRequestHandler):
    """Answers version discovery like Glance, then refuses every API call (a policy denial)."""

    def _refuse(self) -> None:
        if self.path.rstrip("/") in ("", "/v2"):
            host, port = self.server.server_address[:2]
            self._send(300, {"versions": [{"id": "v2.16", "status": "CURRENT", "links": [
                {"rel": "self", "href": f"http://{host}:{port}/v2/"}]}]})
            return
        self._send(403, {"error": {"message": "You are not authorized", "code": 403}})

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_glance() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_refusing_glance_is_a_clear_error(refusing_glance: str, make_image: MakeImage) -> None:
    conn = images.connect(endpoint=refusing_glance)
    with pytest.raises(images.GlanceUnavailable,
                       match=r"Glance refused to list images \(HTTP 403\)"):
        images.list_images(conn, "amphora")
    with pytest.raises(images.GlanceUnavailable, match=r"Glance refused to create .*HTTP 403"):
        images.upload_image(conn, make_image(), tags=["x"])


def ctl(*args: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMPHORA_GLANCE_ENDPOINT": endpoint}
    return subprocess.run([sys.executable, "-m", "controller_stub.cli", "image", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_upload_list_and_select(glance: GlanceServer, make_image: MakeImage) -> None:
    tag = unique_tag()
    first = ctl("upload", str(make_image("cli-old")), "--tag", tag, "--json",
                endpoint=glance.url)
    assert first.returncode == 0, first.stderr
    first_id = json.loads(first.stdout)["id"]
    _past(json.loads(first.stdout)["created_at"])
    second = ctl("upload", str(make_image("cli-new")), "--tag", tag, endpoint=glance.url)
    assert second.returncode == 0, second.stderr
    assert "uploaded cli-new" in second.stdout
    listed = ctl("list", "--tag", tag, endpoint=glance.url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "name", "status"]
    assert "haproxy_version" in lines[0] and "amphora_build_id" in lines[0]
    assert len(lines) == 3
    assert "cli-new" in lines[1] and "cli-old" in lines[2]  # newest first
    assert "2.6.12-1+deb12u2" in lines[1]
    selected = ctl("select", "--tag", tag, endpoint=glance.url)
    assert selected.returncode == 0
    newest_id = lines[1].split()[0]
    assert newest_id != first_id and selected.stdout.strip() == newest_id
    assert json.loads(ctl("list", "--tag", tag, "--json", endpoint=glance.url).stdout)[0][
        "id"] == selected.stdout.strip()


def test_cli_errors_are_one_line(make_image: MakeImage) -> None:
    port = free_port()
    done = ctl("list", endpoint=f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stderr.startswith("amphora-ctl image: error: cannot reach Glance")
    assert "Traceback" not in done.stderr
    missing = ctl("upload", "/nonexistent.qcow2", endpoint=f"http://127.0.0.1:{port}")
    assert missing.returncode == 1
    assert "no image file /nonexistent.qcow2" in missing.stderr



def test_upload_records_build_options_and_performance_hints(
        glance: GlanceServer, glance_conn: Any, make_image: MakeImage) -> None:
    from controller_stub.controller.imaging import target_of
    from haproxy_templates import supports

    trixie = make_image("trixie", haproxy_version="3.0.11-1+deb13u4",
                        openssl_version="3.5.9-1~deb13u1",
                        haproxy_build_options="LUA OPENSSL PROMEX QUIC QUIC_OPENSSL_COMPAT",
                        haproxy_services="prometheus-exporter",
                        qemu_guest_agent_version="1:10.0.2+ds-2")
    bookworm = make_image("bookworm", haproxy_build_options="LUA OPENSSL PROMEX")
    infos = [images.upload_image(glance_conn, image, tags=[unique_tag()])
             for image in (trixie, bookworm)]
    raws = [requests.get(f"{glance.url}/v2/images/{i.id}", timeout=10).json() for i in infos]
    for raw in raws:
        assert (raw["hw_disk_bus"], raw["hw_vif_model"], raw["hw_rng_model"]) == (
            "virtio", "virtio", "virtio")
        assert raw["hw_vif_multiqueue_enabled"] == "true"
    assert raws[0]["hw_qemu_guest_agent"] == "yes" and "hw_qemu_guest_agent" not in raws[1]
    assert raws[0]["haproxy_build_options"] == "LUA OPENSSL PROMEX QUIC QUIC_OPENSSL_COMPAT"
    # what the controller reads back decides what the image may serve
    quic = [supports(target_of(info.properties).versions, "quic_listener") for info in infos]
    assert quic == [True, False]
