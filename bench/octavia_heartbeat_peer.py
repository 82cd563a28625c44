"""Octavia's own heartbeat code, driven from our tests and bench.

Runs with ``.venv-octavia/bin/python`` (it imports the ``octavia`` package
from PyPI, never our packages). Modes, one per argument list:

- ``wrap KEY``: a JSON message on stdin; prints ``wrap_envelope`` of it, hex.
- ``unwrap KEY``: datagrams on stdin, hex, one a line; prints each
  ``unwrap_envelope`` result as a JSON line (or ``{"error": ...}``).
- ``recv KEY HOST COUNT``: binds Octavia's ``UDPStatusGetter`` on HOST (port 0),
  prints its port, then prints COUNT messages its ``dorecv`` returned.
- ``bench KEY HOST COUNT``: as recv, but prints one JSON object: COUNT
  ``dorecv`` calls timed from the first datagram to the last (wall clock
  and the process's CPU time).
"""

from __future__ import annotations

import json
import socket
import sys
import time

from octavia.amphorae.backends.health_daemon import status_message
from octavia.amphorae.drivers.health import heartbeat_udp
from octavia.common import config as octavia_config
from oslo_config import cfg

RECEIVE_BUFFER = 256 << 20
SO_RCVBUFFORCE = 33  # Linux; the socket module does not name it


def _getter(key: str, host: str) -> heartbeat_udp.UDPStatusGetter:
    # Without __init__: it would also start process pools and a database
    # updater; the receive path (update + dorecv) is all we run.
    assert octavia_config  # registers the [health_manager] options update() reads
    cfg.CONF([], project="octavia", default_config_files=[])
    getter = heartbeat_udp.UDPStatusGetter.__new__(heartbeat_udp.UDPStatusGetter)
    getter.sock = None
    getter.update(key, host, 0)
    getter.sock.settimeout(30)
    getter.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    print(getter.sock.getsockname()[1], flush=True)
    return getter


def main() -> int:
    mode, key = sys.argv[1], sys.argv[2]
    if mode == "wrap":
        print(status_message.wrap_envelope(json.load(sys.stdin), key).hex())
    elif mode == "unwrap":
        for line in sys.stdin:
            try:
                print(json.dumps(status_message.unwrap_envelope(bytes.fromhex(line.strip()), key)))
            except Exception as exc:  # report what Octavia raised
                print(json.dumps({"error": type(exc).__name__}))
    elif mode == "recv":
        getter = _getter(key, sys.argv[3])
        for _ in range(int(sys.argv[4])):
            obj, source = getter.dorecv()
            print(json.dumps({"message": obj, "source": source}), flush=True)
    elif mode == "bench":
        getter, count = _getter(key, sys.argv[3]), int(sys.argv[4])
        getter.dorecv()
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(count - 1):
            getter.dorecv()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        print(json.dumps({"datagrams": count - 1, "seconds": elapsed, "cpu_seconds": cpu}),
              flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
