"""Per-load-balancer PEM files under ``{base_cert_dir}/{lb_id}/``."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from amphora_agent import fileutil
from amphora_agent.errors import InvalidRequest, NotFound
from amphora_agent.haproxy import confpaths
from amphora_agent.validation import require_pem, require_pem_filename, require_uuid


class CertStore:
    def __init__(self, base_cert_dir: str) -> None:
        self.base = Path(base_cert_dir)

    def path(self, lb_id: str, filename: str | None = None) -> Path:
        directory = self.base / require_uuid(lb_id, "lb_id")
        return directory / require_pem_filename(filename) if filename else directory

    def put(self, lb_id: str, filename: str, body: bytes) -> str:
        """Store a PEM (mode 0600), or a crt-list naming only files of this
        LB's certificate directory (Octavia uploads one per TLS listener);
        returns its md5, the ETag Octavia expects."""
        target = self.path(lb_id, filename)
        try:
            require_pem(body, "certificate")
        except InvalidRequest as not_pem:
            if not confpaths.is_crt_list(body):
                raise not_pem from None
            confpaths.check_crt_list(body.decode("ascii"), self.path(lb_id))
        fileutil.ensure_dir(self.base)
        fileutil.atomic_write(target, body)
        return hashlib.md5(body, usedforsecurity=False).hexdigest()

    def md5(self, lb_id: str, filename: str) -> str:
        target = self.path(lb_id, filename)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"No certificate with filename: {filename}",
                           message="Certificate Not Found") from None
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    def delete(self, lb_id: str, filename: str) -> None:
        fileutil.remove(self.path(lb_id, filename))

    def delete_all(self, lb_id: str) -> None:
        shutil.rmtree(self.path(lb_id), ignore_errors=True)

    def list(self, lb_id: str) -> Iterable[str]:
        directory = self.path(lb_id)
        return sorted(os.listdir(directory)) if directory.is_dir() else []
