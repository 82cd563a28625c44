"""`make demo`: the most useful end-to-end run the project can do today.

Starts a real agent (gunicorn, mutual TLS) on loopback with throwaway
certificates, talks to it with the controller's client and prints what it
says. Everything is removed at the end.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
import uuid
from pathlib import Path

from controller_stub.agent_process import AgentProcess
from controller_stub.client import AgentClient
from controller_stub.pki import CertificateAuthority
from controller_stub.provision import AgentSettings, write_amphora_files


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="amphora-demo-"))
    process: AgentProcess | None = None
    try:
        ca = CertificateAuthority.create("Amphora demo CA")
        (root / "ca.pem").write_bytes(ca.cert_pem)
        client_pem = ca.issue_client("controller").write(root / "controller.pem")
        amphora_id = str(uuid.uuid4())
        port = _free_port()
        settings = AgentSettings(amphora_id=amphora_id, bind_host="127.0.0.1", bind_port=port,
                                 amphora={"namespace": f"amp-demo-{amphora_id[:8]}",
                                          "service_manager": "direct"})
        config_file = write_amphora_files(root / "amphora", settings, ca, ca.cert_pem)
        print(f"amphora {amphora_id}: agent on https://127.0.0.1:{port} (mTLS)")
        process = AgentProcess(config_file)
        process.start()
        with AgentClient("127.0.0.1", amphora_id, ca_file=str(root / "ca.pem"),
                         client_cert=str(client_pem), port=port) as client:
            process.wait_ready(client)
            print(f"API version: {client.api_version()}")
            print("GET /1.0/info")
            print(json.dumps(client.info(), indent=2))
            print("GET /1.0/details")
            print(json.dumps(client.details(), indent=2))
        return 0
    finally:
        if process is not None:
            process.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
