"""Build an amphora image and boot it under qemu (TCG) the way a controller would.

Shared by the boot test and ``bench/image.py``. The controller's part is real:
a CA, a server certificate naming the amphora id, a client certificate, and
the agent config rendered by ``controller_stub.provision``, all handed to the
VM on a config drive (ISO 9660, label ``config-2``, Nova's ``meta_data.json``
``files`` list). qemu user networking is ``restrict=on`` (the guest reaches
nothing) with the agent port forwarded from 127.0.0.1 only.
:meth:`AmphoraVM.attach_vip_nic` hot-plugs a second NIC over the VM's QMP
socket, as Nova attaches a VIP port: another ``restrict=on`` user network
(:data:`VIP_NETWORK`) with ``vip_ports`` of :data:`VIP_ADDRESS` forwarded
from 127.0.0.1, so a test plugs that NIC as the VIP through the agent and
sends a listener real traffic.

A second channel, a virtio serial port named ``org.amphora.journal.0``, makes
the guest stream the journal of its agent units to ``journal.log`` beside the
console (amphora-journal-export.service, docs/image.md): a boot that fails
shows what the agent itself logged, not only the console.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller_stub.client import AgentClient, Timeouts
from controller_stub.local_agent import free_port
from controller_stub.pki import CertificateAuthority
from controller_stub.provision import AgentSettings

REPO = Path(__file__).resolve().parents[2]  # the source tree: image-create.sh lives there
DEFAULT_CACHE = Path(os.environ.get("AMPHORA_IMAGE_CACHE",
                                    Path.home() / ".cache" / "amphora-image"))


@dataclass(frozen=True)
class BuiltImage:
    path: Path
    manifest: dict[str, Any]
    build_seconds: float | None
    size_bytes: int


def build_image(out_dir: Path, *, cache_dir: Path = DEFAULT_CACHE, name: str = "amphora-test",
                extra_args: tuple[str, ...] = (), log: Path | None = None) -> BuiltImage:
    """Run image-create.sh with the default options; raise with the log tail on failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log = log or out_dir / "build.log"
    started = time.monotonic()
    with open(log, "wb") as handle:
        done = subprocess.run(
            ["bash", str(REPO / "image-create.sh"), "-o", str(out_dir), "-n", name,
             "-c", str(cache_dir), *extra_args],
            stdout=handle, stderr=subprocess.STDOUT, timeout=3600)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"image-create.sh failed ({done.returncode}):\n"
                           + log.read_text(errors="replace")[-5000:])
    image = out_dir / f"{name}.qcow2"
    return BuiltImage(path=image, manifest=json.loads(Path(f"{image}.manifest.json").read_text()),
                      build_seconds=elapsed, size_bytes=image.stat().st_size)


def existing_image(path: Path) -> BuiltImage:
    manifest = json.loads(Path(f"{path}.manifest.json").read_text())
    return BuiltImage(path=path, manifest=manifest, build_seconds=None,
                      size_bytes=path.stat().st_size)


@dataclass
class ControllerIdentity:
    """What a controller holds to talk to one amphora."""

    amphora_id: str
    ca_file: Path
    client_cert: Path


def make_config_drive(workdir: Path, hostname: str = "amphora-boot-test",
                      ) -> tuple[Path, ControllerIdentity]:
    """Certificates + agent config on a config-2 ISO; returns the ISO and the client's side."""
    amphora_id = str(uuid.uuid4())
    ca = CertificateAuthority.create("Amphora boot-test CA")
    ca_file, _ = ca.write(workdir / "ca")
    client_cert = ca.issue_client("controller").write(workdir / "client.pem")
    settings = AgentSettings(amphora_id=amphora_id)
    files = {
        settings.agent_server_cert: ca.issue_amphora(amphora_id).pem,
        settings.agent_server_ca: ca.cert_pem,
        "/etc/octavia/amphora-agent.conf": settings.render().encode(),
    }
    drive = workdir / "config-drive"
    (drive / "openstack/latest").mkdir(parents=True)
    (drive / "openstack/content").mkdir()
    entries = []
    for index, (path, data) in enumerate(files.items()):
        name = f"{index:04x}"
        (drive / "openstack/content" / name).write_bytes(data)
        entries.append({"path": path, "content_path": f"/content/{name}"})
    meta = {"uuid": amphora_id, "hostname": hostname, "name": hostname, "files": entries}
    (drive / "openstack/latest/meta_data.json").write_text(json.dumps(meta))
    iso = workdir / "config-drive.iso"
    subprocess.run(["genisoimage", "-quiet", "-o", str(iso), "-V", "config-2", "-r", "-J",
                    str(drive)], check=True)
    shutil.rmtree(drive)
    return iso, ControllerIdentity(amphora_id, ca_file, client_cert)


AGENT_STARTED = "Started amphora-agent"
# A boot takes 40-80 s here under TCG (longer on a busy host); systemd restarts
# an agent that does not become ready within 90 s, so five minutes means stuck.
BOOT_TIMEOUT = 300.0
JOURNAL_PORT = "org.amphora.journal.0"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# The VIP NIC's user network: qemu's gateway is .2, the VIP a fixed address.
VIP_NETWORK = "192.0.2.0/24"
VIP_GATEWAY = "192.0.2.2"
VIP_ADDRESS = "192.0.2.10"
VIP_MAC = "52:54:00:c0:00:0a"


class AmphoraVM:
    """One qemu TCG guest booted from a copy-on-write overlay of the image."""

    def __init__(self, image: Path, config_drive: Path, workdir: Path, *,
                 memory_mb: int = 1024, cpus: int = 2, vip_ports: tuple[int, ...] = ()) -> None:
        self.workdir = workdir
        self.overlay = workdir / "overlay.qcow2"
        self.console = workdir / "console.log"
        self.journal = workdir / "journal.log"
        self.port = free_port()
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                        "-b", str(image.resolve()), str(self.overlay)], check=True)
        self.command = [
            "qemu-system-x86_64", "-accel", "tcg", "-m", str(memory_mb), "-smp", str(cpus),
            "-display", "none", "-monitor", "none", "-serial", f"file:{self.console}",
            "-no-reboot",
            "-drive", f"file={self.overlay},if=virtio,format=qcow2",
            "-drive", f"file={config_drive},media=cdrom,format=raw,readonly=on",
            "-netdev", f"user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:9443",
            "-device", "virtio-net-pci,netdev=mgmt",
            "-device", "virtio-serial-pci,id=debugser",
            "-chardev", f"file,id=journal,path={self.journal}",
            "-device", f"virtserialport,bus=debugser.0,chardev=journal,name={JOURNAL_PORT}",
        ]
        # guest port -> 127.0.0.1 port on this host, for the VIP NIC attached later
        self.vip_ports = {port: free_port() for port in vip_ports}
        self.qmp_socket = workdir / "qmp.sock"
        self.command += ["-qmp", f"unix:{self.qmp_socket},server=on,wait=off"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        with open(self.workdir / "qemu.log", "wb") as log:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def console_tail(self, chars: int = 4000) -> str:
        try:
            return self.console.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no console output)"

    def agent_started(self) -> bool:
        """systemd said the agent started, which with ``Type=notify`` means it served.

        The console misses that line when the agent becomes ready after the
        serial getty took the console over; the journal channel has it.
        """
        return (AGENT_STARTED in self.journal_text()
                or AGENT_STARTED in ANSI_ESCAPE.sub("", self.console_tail(200_000)))

    def journal_text(self) -> str:
        try:
            return ANSI_ESCAPE.sub("", self.journal.read_text(errors="replace"))
        except OSError:
            return ""

    def diagnostics(self, chars: int = 4000) -> str:
        """The console tail and the guest's journal of the agent's units, for a failed boot."""
        journal = self.journal_text()[-4 * chars:] or "(nothing on the journal channel)"
        return (f"--- console (last {chars} chars) ---\n{self.console_tail(chars)}\n"
                f"--- guest journal: amphora-provision, amphora-netns, amphora-agent "
                f"({self.journal}) ---\n{journal}")

    def wait_for_agent(self, identity: ControllerIdentity, timeout: float = BOOT_TIMEOUT,
                       ) -> tuple[AgentClient, dict[str, Any], float]:
        """Poll GET /1.0/info over mTLS until it answers; returns (client, info, seconds).

        Polling starts once systemd says the agent service started
        (:meth:`agent_started`). On failure the error carries :meth:`diagnostics`.
        """
        assert self.proc is not None
        client = AgentClient("127.0.0.1", identity.amphora_id, ca_file=str(identity.ca_file),
                             client_cert=str(identity.client_cert), port=self.port, retries=0,
                             timeouts=Timeouts(connect=5.0, read=15.0))
        deadline = self.started_at + timeout
        while not self.agent_started():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the agent service never started within {timeout:.0f}s:\n"
                                   + self.diagnostics())
            time.sleep(1)
        last: BaseException | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                info = client.info()
                return client, info, time.monotonic() - self.started_at
            except Exception as exc:  # not up yet: connection reset/refused, TLS EOF
                last = exc
                time.sleep(2)
        raise TimeoutError(f"agent did not answer within {timeout:.0f}s (last: {last}):\n"
                           + self.diagnostics())

    def attach_vip_nic(self) -> None:
        """Hot-plug the VIP NIC, as Nova attaches a VIP port to a running amphora.

        NICs present at boot are management NICs (the image runs DHCP on them);
        only a NIC that arrives later is the agent's to plug.
        """
        forwards = [{"str": f"tcp:127.0.0.1:{host}-{VIP_ADDRESS}:{guest}"}
                    for guest, host in self.vip_ports.items()]
        self.qmp("netdev_add", {"type": "user", "id": "vip", "restrict": True,
                                "net": VIP_NETWORK, "host": VIP_GATEWAY,
                                "dhcpstart": VIP_ADDRESS, "hostfwd": forwards})
        self.qmp("device_add", {"driver": "virtio-net-pci", "netdev": "vip", "mac": VIP_MAC,
                                "id": "vip-nic"})

    def qmp(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """One QMP command on the VM's control socket; raises on QMP's error reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(30)
            conn.connect(str(self.qmp_socket))
            replies = conn.makefile("rb")

            def call(message: dict[str, Any]) -> Any:
                conn.sendall(json.dumps(message).encode() + b"\n")
                for line in replies:
                    reply = json.loads(line)
                    if "error" in reply:
                        raise RuntimeError(f"QMP {message['execute']}: {reply['error']}")
                    if "return" in reply:
                        return reply["return"]
                raise RuntimeError(f"QMP {message['execute']}: the socket closed")

            json.loads(replies.readline())  # the greeting
            call({"execute": "qmp_capabilities"})
            return call({"execute": command, **({"arguments": arguments} if arguments else {})})

    @staticmethod
    def vip_plug_body() -> dict[str, Any]:
        """The ``POST /1.0/plug/vip/<VIP_ADDRESS>`` body for the VIP NIC."""
        return {"subnet_cidr": VIP_NETWORK, "gateway": VIP_GATEWAY, "mac_address": VIP_MAC,
                "host_routes": [], "mtu": 1500}

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"qemu exited with {self.proc.returncode}:\n"
                               + self.diagnostics())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=20)
