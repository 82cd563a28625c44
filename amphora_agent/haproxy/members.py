"""Member (server) changes without a reload, through HAProxy's runtime API.

Each change is applied to the running HAProxy, verified with ``show servers
state``, and written into the installed config (and the last known good
one) so that a later reload or restart keeps it. Where the runtime API
cannot do it (a stats socket without ``level admin``, a server option that
dynamic servers do not support), the config edit is validated and applied
with a reload instead; the response says which happened.

Config representation: maintenance is the ``disabled`` flag; drain is
``weight 0`` with the previous weight kept in a trailing comment, so "ready"
can restore it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amphora_agent import fileutil, metrics
from amphora_agent.errors import Conflict, InvalidRequest, NotFound
from amphora_agent.haproxy import cfgfile, process, sockets
from amphora_agent.haproxy.layout import LbLayout

LOG = logging.getLogger(__name__)

if TYPE_CHECKING:
    from amphora_agent.haproxy.manager import LoadBalancers

BACKEND_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SERVER_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
STATES = ("ready", "drain", "maint")
DRAIN_NOTE = re.compile(r"#\s*amphora: drained from weight (\d+)\s*$")
# server-line options that cannot be given to "add server" or that name
# things unique to another server
_NOT_COPIED = {"disabled", "enabled", "backup"}
_NOT_COPIED_WITH_VALUE = {"id", "cookie", "weight", "addr", "port", "track"}

# show servers state columns (HAProxy 2.x)
# CMAINT (0x04) only records "disabled in the config" and outlives "ready".
_ADMIN_MAINT = 0x01 | 0x02 | 0x20 | 0x40  # FMAINT, IMAINT, RMAINT, HMAINT
_ADMIN_DRAIN = 0x08 | 0x10  # FDRAIN, IDRAIN


@dataclass(frozen=True)
class MemberChange:
    address: str | None = None
    port: int | None = None
    weight: int | None = None
    state: str | None = None
    backup: bool | None = None

    @classmethod
    def from_json(cls, body: Any) -> MemberChange:
        if not isinstance(body, dict):
            raise InvalidRequest("body must be a JSON object")
        unknown = set(body) - {"address", "port", "weight", "state", "backup"}
        if unknown:
            raise InvalidRequest(f"unknown keys: {', '.join(sorted(unknown))}")
        address = body.get("address")
        if address is not None:
            if not isinstance(address, str):
                raise InvalidRequest("address must be a string")
            try:
                address = str(ipaddress.ip_address(address))
            except ValueError:
                raise InvalidRequest(f"address {address!r} is not an IP address") from None
        port = body.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                                 or not 1 <= port <= 65535):
            raise InvalidRequest("port must be an integer 1..65535")
        weight = body.get("weight")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int)
                                   or not 0 <= weight <= 256):
            raise InvalidRequest("weight must be an integer 0..256")
        state = body.get("state")
        if state is not None and state not in STATES:
            raise InvalidRequest(f"state must be one of {', '.join(STATES)}")
        backup = body.get("backup")
        if backup is not None and not isinstance(backup, bool):
            raise InvalidRequest("backup must be a boolean")
        if (address is None) != (port is None):
            raise InvalidRequest("address and port go together")
        return cls(address, port, weight, state, backup)


def check_names(backend: str, server: str | None = None) -> None:
    if not BACKEND_RE.fullmatch(backend):
        raise InvalidRequest(f"backend must match {BACKEND_RE.pattern}")
    if server is not None and not SERVER_RE.fullmatch(server):
        raise InvalidRequest(f"server must match {SERVER_RE.pattern}")


def _addr_token(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# -- config edits ------------------------------------------------------------------


def _edited_line(line: str, change: MemberChange) -> str:
    note = DRAIN_NOTE.search(line)
    indent, name, addr, options = cfgfile.split_server_line(line)
    if change.address is not None and change.port is not None:
        addr = _addr_token(change.address, change.port)
    drained_from = int(note.group(1)) if note else None
    current_weight = _option(options, "weight")
    if change.weight is not None:
        if drained_from is not None and change.state != "ready":
            drained_from = change.weight
        else:
            options = cfgfile.set_option(options, "weight", str(change.weight))
    if change.backup is not None:
        options = cfgfile.set_flag(options, "backup", change.backup)
    if change.state == "maint":
        options = cfgfile.set_flag(options, "disabled", True)
    elif change.state in ("ready", "drain"):
        options = cfgfile.set_flag(options, "disabled", False)
    if change.state == "drain" and drained_from is None:
        drained_from = int(current_weight or 1)
        options = cfgfile.set_option(options, "weight", "0")
    elif change.state == "ready" and drained_from is not None:
        weight = change.weight if change.weight is not None else drained_from
        options = cfgfile.set_option(options, "weight", str(weight))
        drained_from = None
    text = f"{indent}server {name} {addr} {' '.join(options)}".rstrip()
    if drained_from is not None:
        text += f"  # amphora: drained from weight {drained_from}"
    return text


def _option(options: list[str], keyword: str) -> str | None:
    for i, word in enumerate(options[:-1]):
        if word == keyword:
            return options[i + 1]
    return None


def template_options(lines: list[str], backend: str) -> list[str]:
    """Options a new server inherits from the backend's existing servers."""
    section = cfgfile.backend_section(lines, backend)
    if section is None:
        return []
    for index in range(section.start + 1, section.end):
        try:
            _indent, _name, _addr, options = cfgfile.split_server_line(lines[index])
        except ValueError:
            continue
        out, skip = [], False
        for i, word in enumerate(options):
            if skip:
                skip = False
                continue
            if word in _NOT_COPIED_WITH_VALUE and i + 1 < len(options):
                skip = True
                continue
            if word not in _NOT_COPIED:
                out.append(word)
        return out
    return []


def edit_config(text: str, backend: str, server: str, change: MemberChange | None, *,
                add_options: list[str] | None = None) -> str:
    """The config with one server line changed, added (``add_options``) or,
    with ``change=None``, removed."""
    lines = text.splitlines()
    index = cfgfile.find_server(lines, backend, server)
    if change is None:
        if index is not None:
            del lines[index]
    elif index is not None:
        lines[index] = _edited_line(lines[index], change)
    else:
        section = cfgfile.backend_section(lines, backend)
        if section is None:
            raise NotFound(f"no backend {backend}")
        assert change.address is not None and change.port is not None
        weight = change.weight if change.weight is not None else 1
        options = ["weight", str(weight), *(add_options or [])]
        if change.backup:
            options.append("backup")
        line = f"    server {server} {_addr_token(change.address, change.port)} " + " ".join(
            options)
        line = _edited_line(line, MemberChange(state=change.state))
        insert_at = section.end
        while insert_at > section.start + 1 and not lines[insert_at - 1].strip():
            insert_at -= 1
        lines.insert(insert_at, line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


# -- runtime ----------------------------------------------------------------------


@dataclass
class ServerState:
    name: str
    address: str
    port: int
    weight: int
    admin: int
    operational: int

    @property
    def state(self) -> str:
        if self.admin & _ADMIN_MAINT:
            return "maint"
        if self.admin & _ADMIN_DRAIN:
            return "drain"
        return "ready"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "port": self.port,
                "weight": self.weight, "state": self.state,
                "up": self.operational == 2}


def servers_state(stats_socket: str, backend: str) -> dict[str, ServerState]:
    text = sockets.command(stats_socket, f"show servers state {backend}")
    result = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 19 or not fields[0].isdigit():
            continue
        # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state
        # srv_uweight srv_iweight ... srv_port (index 18)
        result[fields[3]] = ServerState(
            name=fields[3], address=fields[4], port=int(fields[18]), weight=int(fields[7]),
            admin=int(fields[6]), operational=int(fields[5]))
    return result


class RuntimeRefused(Exception):
    """The runtime API cannot make this change; fall back to a reload."""


def _runtime(stats_socket: str, line: str) -> str:
    reply = sockets.command(stats_socket, line).strip()
    lowered = reply.lower()
    if any(marker in lowered for marker in (
            "permission denied", "unknown command", "not supported", "unsupported",
            "experimental", "error", "invalid", "cannot", "can't", "no such", "require")):
        raise RuntimeRefused(f"{line}: {reply}")
    return reply


class Members:
    def __init__(self, loadbalancers: LoadBalancers) -> None:
        self.lbs = loadbalancers

    def _context(self, lb_id: str, backend: str) -> tuple[LbLayout, str, str | None]:
        layout = self.lbs.installed_layout(lb_id)
        text = layout.config.read_text(errors="replace")
        if cfgfile.backend_section(text.splitlines(), backend) is None:
            raise NotFound(f"No backend {backend} in load balancer {layout.lb_id}",
                           message="Backend Not Found")
        socket_info = cfgfile.stats_socket(text)
        running = self.lbs.services.is_running(layout.service_name)
        admin_socket = socket_info[0] if socket_info and socket_info[1] and running else None
        return layout, text, admin_socket

    def list(self, lb_id: str, backend: str) -> list[dict[str, Any]]:
        check_names(backend)
        _layout, text, admin_socket = self._context(lb_id, backend)
        if admin_socket:
            return [s.as_dict() for s in servers_state(admin_socket, backend).values()]
        lines = text.splitlines()
        section = cfgfile.backend_section(lines, backend)
        assert section is not None
        out = []
        for index in range(section.start + 1, section.end):
            try:
                _indent, name, addr, options = cfgfile.split_server_line(lines[index])
            except ValueError:
                continue
            host, _, port = addr.rpartition(":")
            out.append({"name": name, "address": host.strip("[]"), "port": int(port),
                        "weight": int(_option(options, "weight") or 1),
                        "state": "maint" if "disabled" in options else (
                            "drain" if DRAIN_NOTE.search(lines[index]) else "ready"),
                        "up": None})
        return out

    def upsert(self, lb_id: str, backend: str, server: str, change: MemberChange) -> str:
        """Add or change a server; returns "runtime" or "reload".

        The LB lock is held from reading the config to installing the edit
        (and its reload), so a concurrent upload or member change is neither
        lost nor reverted by this one.
        """
        check_names(backend, server)
        layout = self.lbs.installed_layout(lb_id)
        with self.lbs.locked_installed(layout):
            layout, text, admin_socket = self._context(lb_id, backend)
            lines = text.splitlines()
            exists = cfgfile.find_server(lines, backend, server) is not None
            if not exists and change.address is None:
                raise InvalidRequest("a new server needs address and port")
            options = template_options(lines, backend)
            if admin_socket and change.backup is None:
                try:
                    self._apply_runtime(admin_socket, backend, server, change, exists, options)
                except RuntimeRefused as exc:
                    LOG.info("runtime API refused (%s); applying with a reload", exc)
                else:
                    self._persist(layout, backend, server, change, options)
                    metrics.count(self.lbs.config, "runtime_changes")
                    return "runtime"
            self._apply_with_reload(layout, edit_config(text, backend, server, change,
                                                        add_options=options))
            return "reload"

    def remove(self, lb_id: str, backend: str, server: str) -> str:
        check_names(backend, server)
        layout = self.lbs.installed_layout(lb_id)
        with self.lbs.locked_installed(layout):
            layout, text, admin_socket = self._context(lb_id, backend)
            if cfgfile.find_server(text.splitlines(), backend, server) is None:
                return "none"  # idempotent
            if admin_socket:
                try:
                    _runtime(admin_socket, f"set server {backend}/{server} state maint")
                    sockets.command(admin_socket, f"shutdown sessions server {backend}/{server}")
                    reply = sockets.command(admin_socket, f"del server {backend}/{server}")
                    if "deleted" not in reply.lower():
                        raise RuntimeRefused(reply)
                except RuntimeRefused as exc:
                    LOG.info("runtime API refused (%s); applying with a reload", exc)
                else:
                    self._persist(layout, backend, server, None, [])
                    metrics.count(self.lbs.config, "runtime_changes")
                    return "runtime"
            self._apply_with_reload(layout, edit_config(text, backend, server, None))
            return "reload"

    @staticmethod
    def _apply_runtime(admin_socket: str, backend: str, server: str, change: MemberChange,
                       exists: bool, options: list[str]) -> None:
        target = f"{backend}/{server}"
        if not exists:
            assert change.address is not None and change.port is not None
            weight = change.weight if change.weight is not None else 1
            words = " ".join(["weight", str(weight), *options])
            reply = sockets.command(
                admin_socket, f"add server {target} {_addr_token(change.address, change.port)} "
                f"{words}").strip()
            if "registered" not in reply.lower():
                raise RuntimeRefused(reply)
            if "check" in options:
                _runtime(admin_socket, f"enable health {target}")
            _runtime(admin_socket, f"set server {target} state "
                     f"{change.state or 'ready'}")
        else:
            if change.address is not None and change.port is not None:
                _apply_addr(admin_socket, target, change.address, change.port)
            if change.weight is not None:
                _runtime(admin_socket, f"set server {target} weight {change.weight}")
            if change.state is not None:
                _runtime(admin_socket, f"set server {target} state {change.state}")
        state = servers_state(admin_socket, backend).get(server)
        if state is None:
            raise Conflict(f"{target} is not in the running HAProxy after the change")
        if change.address is not None and (state.address, state.port) != (
                change.address, change.port):
            raise RuntimeRefused(f"address of {target} did not change")
        if change.state is not None and state.state != change.state:
            raise RuntimeRefused(f"{target} is {state.state}, not {change.state}")
        if change.weight is not None and state.weight != change.weight:
            raise RuntimeRefused(f"{target} has weight {state.weight}, not {change.weight}")

    def _persist(self, layout: LbLayout, backend: str, server: str,
                 change: MemberChange | None, options: list[str]) -> None:
        """Write the change into the installed and the last known good config
        (one directory fsync covers both renames: same directory)."""
        updates = []
        for path in (layout.config, layout.last_good):
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            if cfgfile.backend_section(text.splitlines(), backend) is not None:
                updates.append((path, edit_config(text, backend, server, change,
                                                  add_options=options).encode()))
        for index, (path, data) in enumerate(updates):
            fileutil.atomic_write(path, data, sync_dir=index == len(updates) - 1)

    def _apply_with_reload(self, layout: LbLayout, new_text: str) -> None:
        """Validate the edited config, install it, and reload if running
        (the caller holds the LB lock, which the reload re-enters)."""
        amphora_id = self.lbs.amphora_id(layout)
        with self.lbs.locked(layout):
            with fileutil.staged(layout.config, [new_text.encode()]) as staged:
                ok, output = process.check(self.lbs.config.haproxy_cmd, layout, staged,
                                           amphora_id)
                if not ok:
                    metrics.count(self.lbs.config, "config_validation_failures")
                    raise InvalidRequest(output)
            if self.lbs.services.is_running(layout.service_name):
                self.lbs.action(layout.lb_id, "reload")


def _apply_addr(admin_socket: str, target: str, address: str, port: int) -> None:
    reply = sockets.command(admin_socket, f"set server {target} addr {address} port {port}")
    lowered = reply.lower()
    if "changed" not in lowered and "no need" not in lowered and "nothing" not in lowered:
        raise RuntimeRefused(reply.strip())
