"""What an uploaded keepalived config may do, checked before ``keepalived -t``.

keepalived runs as root and executes the scripts a config names (``script``,
``notify*``, ``misc_path``...). An upload is refused with a 400 unless every
such program resolves, symlinks followed, into the directories the agent owns
for that kind of config (``{base_path}/vrrp/`` for VRRP, ``{base_path}/lvs/check/``
for UDP listeners; amphora_contract/vrrp.py). Keywords that read other
files, create FIFOs or sockets, change namespace or mail out are refused
outright: neither Octavia's templates nor ours use them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from amphora_agent.errors import InvalidRequest

SCRIPT_KEYWORDS = frozenset({
    "script", "misc_path", "notify", "notify_master", "notify_backup", "notify_fault",
    "notify_stop", "notify_deleted", "notify_master_rx_lower_pri", "notify_up",
    "notify_down", "quorum_up", "quorum_down"})
REFUSED_KEYWORDS = frozenset({
    "include", "includet", "startup_script", "startup_script_timeout", "shutdown_script",
    "shutdown_script_timeout", "notify_fifo", "notify_fifo_script", "vrrp_notify_fifo",
    "vrrp_notify_fifo_script", "lvs_notify_fifo", "lvs_notify_fifo_script",
    "net_namespace_ipvs", "namespace_with_ipsets", "instance", "tmp_config_directory",
    "use_pid_dir", "smtp_server", "smtp_alert", "smtp_alert_vrrp", "smtp_alert_checker",
    "notification_email", "enable_snmp_vrrp", "enable_snmp_checker", "enable_snmp_rfc",
    "enable_snmp_rfcv2", "enable_snmp_rfcv3", "enable_snmp_bfd", "snmp_socket",
    "enable_traps", "enable_dbus", "enable_dbus_instance", "vrrp_track_file", "track_file",
    "file", "reload_time_file", "reload_file", "config_save_dir", "data_use_instance",
    "vrrp_iptables", "vrrp_ipsets", "nftables", "nftables_priority"})
_PROGRAM_RE = re.compile(r"(?:/[A-Za-z0-9_.+-]+)+")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def words(line: str) -> list[str]:
    """keepalived's split: whitespace separates words, a double-quoted string
    is one word, ``#`` or ``!`` outside quotes ends the line."""
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c.isspace():
            i += 1
        elif c in "#!":
            break
        elif c == '"':
            end = line.find('"', i + 1)
            end = n if end < 0 else end
            out.append(line[i + 1:end])
            i = end + 1
        else:
            j = i
            while j < n and not line[j].isspace() and line[j] != '"':
                j += 1
            out.append(line[i:j])
            i = j
    return out


def _lines(text: str) -> Iterator[tuple[int, list[str]]]:
    for number, line in enumerate(text.splitlines(), 1):
        found = words(line)
        if found:
            yield number, found


def check(text: str, allowed_dirs: tuple[Path, ...], namespace: str) -> None:
    """Raise InvalidRequest unless ``text`` is a config we let keepalived run.

    ``net_namespace`` may only name the agent's own namespace (Octavia's LVS
    template names it; keepalived is started there with ``-s`` anyway)."""
    if _FORBIDDEN_CHARS.search(text):
        raise InvalidRequest("the config contains control characters")
    real_dirs = tuple(Path(os.path.realpath(d)) for d in allowed_dirs)
    for number, found in _lines(text):
        keyword = found[0].strip("{}")
        if keyword[:1] in ("$", "@", "~") or "$" in "".join(found):
            raise InvalidRequest(f"line {number}: definitions, config ids and '$' "
                                 "are not allowed in an uploaded config")
        if keyword in REFUSED_KEYWORDS:
            raise InvalidRequest(f"line {number}: {keyword} is not allowed in an "
                                 "uploaded config")
        if keyword == "net_namespace" and found[1:] != [namespace]:
            raise InvalidRequest(f"line {number}: net_namespace may only name {namespace}")
        if keyword in SCRIPT_KEYWORDS:
            # The program is the first word of the argument, quoted or not.
            argument = found[1] if len(found) > 1 else ""
            program = words(argument)[0] if words(argument) else ""
            _check_program(number, keyword, program, real_dirs)


def _check_program(number: int, keyword: str, program: str,
                   real_dirs: tuple[Path, ...]) -> None:
    if not program.startswith("/"):
        raise InvalidRequest(f"line {number}: {keyword} {program!r} must be an absolute path")
    # Plain components only: no '..' (the kernel resolves it after symlinks)
    # and no '#'/'!' whose reading as a comment could differ from keepalived's.
    if not _PROGRAM_RE.fullmatch(program) or "/../" in f"{program}/" or "/./" in f"{program}/":
        raise InvalidRequest(f"line {number}: {keyword} {program!r} must be an absolute path "
                             "of plain components")
    real = Path(os.path.realpath(program))
    if not any(real.is_relative_to(d) and real != d for d in real_dirs):
        where = ", ".join(f"{d}/" for d in real_dirs)
        raise InvalidRequest(f"line {number}: {keyword} {program!r} is outside the "
                             f"agent's check-script directory ({where})")
