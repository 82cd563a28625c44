"""Client identity posture: which controller certificates may drive this amphora.

A certificate from the right CA is not enough: an amphora's own certificate
chains to a CA too, and its CN is the amphora id, a UUID. So a client whose
CN is a UUID is refused unless ``allow_uuid_client_identity`` is set, and
when ``allowed_client_identities`` lists names, only certificates whose CN
or a DNS subjectAltName is listed get in (IP, email and URI SANs never match:
they are not names a controller is known by). Revocation is checked at the
handshake (``client_crl_file``, see amphora_agent/tls.py).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from amphora_agent import config as agent_config

LOG = logging.getLogger(__name__)


def common_names(peercert: dict[str, Any] | None) -> list[str]:
    if not peercert:
        return []
    return [value for rdn in peercert.get("subject", ()) for key, value in rdn
            if key == "commonName"]


def peer_identities(peercert: dict[str, Any] | None) -> set[str]:
    """CN and DNS subjectAltNames of a certificate as ``ssl`` decodes it."""
    if not peercert:
        return set()
    names = set(common_names(peercert))
    names.update(value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS")
    return names


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ClientPosture:
    allowed: tuple[str, ...] = ()
    allow_uuid: bool = False

    @classmethod
    def of(cls, config: agent_config.AgentConfig) -> ClientPosture:
        return cls(config.allowed_client_identities, config.allow_uuid_client_identity)

    def refusal(self, peercert: dict[str, Any] | None) -> str | None:
        """Why this client is refused, or None if it may call."""
        if not self.allow_uuid:
            for name in common_names(peercert):
                if _is_uuid(name):
                    return (f"client identity {name} is an amphora id; "
                            "amphora certificates cannot drive an agent")
        if self.allowed and not peer_identities(peercert) & set(self.allowed):
            names = ", ".join(sorted(peer_identities(peercert))) or "none"
            return f"client identity {names} is not allowed"
        return None


class ClientPolicy:
    """The posture as the config file says now.

    ``PUT /1.0/config`` rewrites the file; re-reading it when it changes (one
    stat per request) makes a new ``allowed_client_identities`` apply to the
    next request, in every worker, without a restart. A file that no longer
    parses keeps the last good posture.
    """

    def __init__(self, config: agent_config.AgentConfig) -> None:
        self.config_file = config.config_file
        self._posture = ClientPosture.of(config)
        self._stamp = self._file_stamp()
        self._lock = threading.Lock()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        if not self.config_file:
            return None
        try:
            st = os.stat(self.config_file)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current(self) -> ClientPosture:
        stamp = self._file_stamp()
        with self._lock:
            if stamp is not None and stamp != self._stamp:
                try:
                    self._posture = ClientPosture.of(agent_config.load(self.config_file))
                except agent_config.ConfigError as exc:
                    LOG.error("keeping the previous client identity settings: %s", exc)
                else:
                    warn_if_unpinned(self._posture.allowed)
                self._stamp = stamp
            return self._posture


def warn_if_unpinned(allowed: tuple[str, ...]) -> None:
    if not allowed:
        LOG.warning("allowed_client_identities is empty: ANY certificate issued by the "
                    "client CA (except amphora certificates) can drive this amphora; "
                    "set [amphora] allowed_client_identities to the controllers' names")
