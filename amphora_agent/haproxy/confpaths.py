"""Every file an uploaded HAProxy config names must belong to its load balancer.

HAProxy runs as root until it drops privileges, so a path in a config is a
file it may read (certificates, CAs, error pages, maps, ACL pattern files),
create or replace (sockets, pid and state files) or run (external checks).
An upload is refused with a 400 naming the keyword and the path unless every
such path, normalised and with symlinks resolved, lies in a place of that
LB (docs/agent.md, "Paths in uploaded configs"):

- its directory ``{base_path}/{lb_id}/`` (not the agent's own files there),
- its certificate directory ``{base_cert_dir}/{lb_id}/``,
- the exact paths Octavia's templates give it: the stats socket
  ``{base_path}/{lb_id}.sock``, the syslog sockets for ``log`` and the ping
  wrapper for ``external-check command``.

Keywords that load code or change the environment HAProxy's children run in
(Lua, ``program`` sections, SSL engines and providers, ``setenv``) are
refused outright: Octavia's templates use none of them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from amphora_agent.errors import InvalidRequest
from amphora_agent.haproxy import cfgfile
from amphora_agent.haproxy.layout import LbLayout

SYSLOG_SOCKETS = ("/dev/log", "/run/rsyslog/octavia/log")
PING_WRAPPER = "ping-wrapper.sh"
OCTAVIA_BASE_PATH = "/var/lib/octavia"

# Sections HAProxy knows that Octavia never renders and that run programs or
# open sockets and files of their own.
REFUSED_SECTIONS = ("program", "crt-store", "log-forward", "ring", "acme", "traces")
SECTIONS = (*cfgfile.SECTION_KEYWORDS, *REFUSED_SECTIONS, "fcgi-app")
# Keywords refused wherever they appear.
REFUSED_KEYWORDS = ("lua-load", "lua-load-per-thread", "lua-prepend-path", "ssl-engine",
                    "ssl-provider", "ssl-provider-path", "setenv", "presetenv", "resetenv",
                    "unsetenv", "default-path", "unix-bind", "external-check path")
# Keywords whose first argument is a file or directory.
PATH_KEYWORDS = ("pidfile", "chroot", "server-state-base", "crt-base", "ca-base", "key-base",
                 "ssl-dh-param-file", "issuers-chain-path", "51degrees-data-file",
                 "deviceatlas-json-file", "wurfl-data-file", "h1-case-adjust-file",
                 "httpclient.ssl.ca-file")
# Options of bind/server lines (and crt-list entries) whose argument is a file.
PATH_OPTIONS = {"crt": "crt-base", "crt-list": "crt-base", "ca-file": "ca-base",
                "crl-file": "ca-base", "ca-verify-file": "ca-base", "ca-sign-file": "ca-base",
                "key": "key-base", "ocsp": None, "issuer": None, "sctl": None}
ADDRESS_LINES = ("bind", "server", "default-server", "server-template", "peer")
RETURN_LINES = ("http-request", "http-response", "http-error", "http-after-response")
# Converters and actions naming a map or ACL pattern file: map(/f), map_str(/f),
# set-map(/f), del-map(/f), add-acl(/f), del-acl(/f).
_FILE_CALL = re.compile(r"(?<![A-Za-z0-9_.-])((?:map(?:_[a-z0-9_]+)?)|set-map|del-map|add-acl"
                        r"|del-acl)\(([^,)]*)")


@dataclass(frozen=True)
class Places:
    """Where one LB's files may be."""

    directories: tuple[Path, ...]
    exact: frozenset[Path]
    reserved: frozenset[Path]  # the agent's own files inside the LB directory
    syslog: frozenset[Path]
    check_commands: frozenset[Path]

    def owns(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` (absolute) resolves into one of this LB's places."""
        real = _real(path)
        if real in self.reserved:
            return False
        return real in self.exact or any(real == d or real.is_relative_to(d)
                                         for d in self.directories)


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.path.normpath(os.fspath(path))))


def places(layout: LbLayout, cert_dir: Path) -> Places:
    base = layout.base_path
    return Places(
        directories=(_real(layout.directory), _real(cert_dir)),
        exact=frozenset({_real(base / f"{layout.lb_id}.sock")}),
        reserved=frozenset(_real(p) for p in (
            layout.config, layout.last_good, layout.amphora_id_file, layout.pid_file,
            layout.master_socket, layout.lock_file, layout.heartbeat_held)),
        syslog=frozenset(_real(p) for p in SYSLOG_SOCKETS),
        check_commands=frozenset({_real(Path(OCTAVIA_BASE_PATH) / PING_WRAPPER),
                                  _real(base / PING_WRAPPER)}),
    )


def _refuse(keyword: str, path: str, why: str = "is outside this load balancer's "
            "directories") -> InvalidRequest:
    return InvalidRequest(f"{keyword}: path {path!r} {why}")


class _Checker:
    def __init__(self, where: Places) -> None:
        self.where = where
        self.bases: dict[str, str] = {}

    def path(self, keyword: str, raw: str, base_keyword: str | None = None, *,
             allowed: frozenset[Path] = frozenset()) -> Path:
        """Resolve a path argument; refuse it unless it belongs to the LB."""
        if not raw or "$" in raw or any(ord(c) < 32 or ord(c) == 127 for c in raw):
            raise _refuse(keyword, raw, "is empty or has '$' or control characters")
        base = self.bases.get(base_keyword or "")
        if not raw.startswith("/"):
            if base is None:
                raise _refuse(keyword, raw, "must be absolute")
            raw = f"{base.rstrip('/')}/{raw}"
        resolved = _real(raw)
        if resolved in allowed or self.where.owns(raw):
            return resolved
        raise _refuse(keyword, raw)

    def address(self, keyword: str, raw: str, *, allowed: frozenset[Path] = frozenset()) -> None:
        """A socket address: a unix path must belong to the LB."""
        lowered = raw.lower()
        if lowered.startswith("unix@"):
            self.path(keyword, raw[5:], allowed=allowed)
        elif raw.startswith("/"):
            self.path(keyword, raw, allowed=allowed)
        elif lowered.startswith(("fd@", "sockpair@")):
            raise _refuse(keyword, raw, "is an inherited file descriptor")

    def options(self, keyword: str, words: list[str]) -> None:
        for i, word in enumerate(words[:-1]):
            if word in PATH_OPTIONS:
                self.path(f"{keyword} {word}", words[i + 1], PATH_OPTIONS[word])

    def calls_and_pattern_files(self, keyword: str, words: list[str]) -> None:
        for i, word in enumerate(words):
            if word == "-f" and i + 1 < len(words):
                self.path(f"{keyword} -f", words[i + 1])
            for match in _FILE_CALL.finditer(word):
                self.path(f"{keyword} {match.group(1)}()", match.group(2))

    def line(self, section: str, words: list[str]) -> None:
        keyword = words[0]
        if "$" in keyword:
            raise InvalidRequest(f"{keyword!r}: a keyword may not come from the environment")
        pair = " ".join(words[:2])
        if keyword in REFUSED_KEYWORDS or pair in REFUSED_KEYWORDS:
            raise InvalidRequest(f"{pair if pair in REFUSED_KEYWORDS else keyword}: "
                                 "not allowed in an uploaded config")
        args = words[1:]
        if keyword in PATH_KEYWORDS and args:
            self.path(keyword, args[0])
            if keyword in ("crt-base", "ca-base", "key-base", "server-state-base"):
                self.bases[keyword] = args[0]
        elif keyword in ("server-state-file", "server-state-file-name") and args:
            if args[0] == "use-backend-name":  # a name HAProxy builds from the backend's
                raise _refuse(keyword, args[0], "is not allowed; name the file")
            self.path(keyword, args[0], "server-state-base")
        elif pair == "stats socket" and len(words) > 2:
            self.address(pair, words[2])
            self.options(pair, words[3:])
        elif keyword == "log" and args and args[0] != "global":
            self.address(keyword, args[0], allowed=self.where.syslog)
        elif keyword in ADDRESS_LINES:
            # bind ADDR..., server NAME ADDR..., default-server OPTS...
            address_at = {"bind": 0, "server": 1, "server-template": 2, "peer": 1}.get(keyword)
            if address_at is not None and len(args) > address_at:
                for address in args[address_at].split(","):
                    self.address(keyword, address)
            self.options(keyword, args)
        elif pair == "external-check command" and len(words) > 2:
            self.path(pair, words[2], allowed=self.where.check_commands)
            if _real(words[2]) not in self.where.check_commands:
                raise _refuse(pair, words[2], "is not the ping wrapper")
        elif keyword == "errorfile" and len(args) > 1:
            self.path(keyword, args[1])
        elif keyword == "filter" and args[:1] == ["spoe"]:
            for i, word in enumerate(args[:-1]):
                if word == "config":
                    self.path("filter spoe config", args[i + 1])
        if keyword in RETURN_LINES:
            for i, word in enumerate(args[:-1]):
                if word in ("file", "lf-file"):
                    self.path(f"{keyword} {word}", args[i + 1])
        self.calls_and_pattern_files(keyword, words)


def _expands_environment(line: str) -> bool:
    """Whether HAProxy would substitute an environment variable in ``line``:
    an unescaped ``$NAME`` or ``${NAME}`` inside double quotes. The words it
    would produce cannot be checked here, so such lines are refused."""
    quote: str | None = None
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and quote != "'":
            i += 2
            continue
        if quote is None and c == "#":
            return False
        if c in "\"'" and quote in (None, c):
            quote = None if quote == c else c
        elif c == "$" and quote == '"':
            following = line[i + 1:i + 2]
            if following in ("{", "_") or following.isalpha():
                return True
        i += 1
    return False


def _lines(text: str) -> Iterator[tuple[str, list[str]]]:
    """(section kind, words) of every non-empty line; HAProxy starts a section
    at its keyword whatever the indentation, and so does this."""
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        if "$" in line and _expands_environment(line):
            raise InvalidRequest(f"line {number}: environment variables are not allowed "
                                 "in an uploaded config")
        words = cfgfile.words(line)
        if not words:
            continue
        if words[0] in SECTIONS:
            section = words[0]
        yield section, words


def check(text: str, where: Places) -> list[Path]:
    """Raise InvalidRequest unless every path in ``text`` belongs to the LB.

    Returns the crt-list files it names, already checked, whose entries are
    checked by :func:`check_crt_lists`.
    """
    checker = _Checker(where)
    crt_lists: list[Path] = []
    # Bases are global settings; HAProxy applies them to the whole file.
    for section, words in _lines(text):
        if section == "global" and words[0] in ("crt-base", "ca-base", "key-base",
                                                "server-state-base") and len(words) > 1:
            checker.path(words[0], words[1])
            checker.bases[words[0]] = words[1]
    for section, words in _lines(text):
        if words[0] in REFUSED_SECTIONS:
            raise InvalidRequest(f"{words[0]}: section not allowed in an uploaded config")
        if words[0] in SECTIONS:
            continue
        checker.line(section, words)
        for i, word in enumerate(words[:-1]):
            if word == "crt-list" and words[0] in ADDRESS_LINES:
                crt_lists.append(checker.path("crt-list", words[i + 1], "crt-base"))
    check_crt_lists(crt_lists, checker)
    return crt_lists


def is_crt_list(body: bytes) -> bool:
    """Whether an upload looks like a crt-list: ASCII lines, the first
    naming a file."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return False
    entries = [w for w in (cfgfile.words(line) for line in text.splitlines()) if w]
    return bool(entries) and all(w[0].startswith("/") for w in entries)


def check_crt_list(text: str, cert_dir: Path) -> None:
    """Refuse a crt-list upload unless every file it names is in ``cert_dir``
    (the LB's certificate directory)."""
    real_dir = _real(cert_dir)
    where = Places(directories=(real_dir,), exact=frozenset(), reserved=frozenset(),
                   syslog=frozenset(), check_commands=frozenset())
    checker = _Checker(where)
    for line in text.splitlines():
        words = cfgfile.words(line)
        if words:
            checker.path("crt-list entry", words[0])
            checker.options("crt-list entry", [w.strip("[]") for w in words[1:] if w.strip("[]")])


def check_crt_lists(files: list[Path], checker: _Checker) -> None:
    """Each entry of a crt-list names a certificate (and options naming CAs,
    CRLs): they must belong to the LB too."""
    for crt_list in files:
        try:
            text = crt_list.read_text(encoding="utf-8", errors="surrogateescape")
        except (FileNotFoundError, IsADirectoryError):
            continue  # haproxy -c reports it
        for line in text.splitlines():
            words = cfgfile.words(line)
            if not words:
                continue
            checker.path("crt-list entry", words[0], "crt-base")
            options = [w.strip("[]") for w in words[1:]]
            checker.options("crt-list entry", [w for w in options if w])
