"""Replacing the agent's config file and its server certificate.

Both are validated in full before the file is swapped, so a bad upload
leaves the running agent exactly as it was.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from amphora_agent import config as agent_config
from amphora_agent import fileutil, tls
from amphora_agent.errors import InvalidRequest

LOG = logging.getLogger(__name__)
_ROTATION = threading.Lock()


def replace_config(current: agent_config.AgentConfig, body: bytes) -> agent_config.AgentConfig:
    """Validate and install a new agent config.

    The heartbeat sender re-reads the file when it changes, so targets,
    interval and key apply without a restart; listener settings (bind address,
    certificates) apply at the next agent start.
    """
    if not current.config_file:
        raise InvalidRequest("this agent was not started from a config file")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("config is not UTF-8 text") from None
    try:
        new = agent_config.parse(text, source=current.config_file)
    except agent_config.ConfigError as exc:
        raise InvalidRequest(str(exc)) from None
    changed = agent_config.immutable_changes(current, new)
    if changed:
        raise InvalidRequest(f"{changed[0]}: cannot be changed through the API "
                             "(it names a path, binary, CA, certificate or identity)")
    fileutil.atomic_write(current.config_file, body)
    LOG.info("agent config replaced (md5 %s)",
             hashlib.md5(body, usedforsecurity=False).hexdigest())
    return new


def rotate_server_certificate(current: agent_config.AgentConfig, body: bytes) -> None:
    """Install a new server cert+key PEM; new connections use it at once.

    The PEM is validated, then written beside the installed one and turned
    into the real server context (client CA, CRL, TLS floor) before it
    replaces anything. The replaced certificate is kept as ``<cert>.prev``,
    which serves if the installed one ever stops building a context.
    """
    target = current.agent_server_cert
    from amphora_agent import certcheck  # cryptography only when a rotation arrives

    with _ROTATION:
        leaf = certcheck.validate_server_pem(body, amphora_id=current.amphora_id,
                                       installed_cert=target)
        with fileutil.staged(target, [body]) as candidate:
            certcheck.serve_check(str(candidate), current.agent_server_ca,
                            current.agent_tls_protocol, current.client_crl_file)
            try:
                with open(target, "rb") as handle:
                    installed = handle.read()
            except FileNotFoundError:
                installed = b""
            if installed:
                fileutil.atomic_write(tls.previous_path(target), installed, sync_dir=False)
    LOG.info("server certificate rotated: serial %x, valid until %s",
             leaf.serial_number, leaf.not_valid_after_utc.isoformat())
