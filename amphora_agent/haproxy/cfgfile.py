"""Just enough understanding of a haproxy.cfg for the agent's own needs.

The agent never renders configs; it reads the ones a controller sent to find
frontends (for ``/1.0/listeners``), the stats socket and server-state file
(to talk to HAProxy), and edits single ``server`` lines so that runtime
member changes survive a reload.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

SECTION_KEYWORDS = ("global", "defaults", "frontend", "backend", "listen", "peers",
                    "userlist", "resolvers", "mailers", "program", "http-errors", "ring",
                    "cache")
_SECTION_KEYWORDS = SECTION_KEYWORDS


@dataclass(frozen=True)
class Section:
    kind: str
    name: str
    start: int  # index of the header line
    end: int  # index one past the last line


@dataclass(frozen=True)
class Frontend:
    name: str
    mode: str
    tls_terminated: bool

    @property
    def is_listener(self) -> bool:
        """Listener frontends are named by the listener's UUID."""
        try:
            return str(uuid.UUID(self.name)) == self.name
        except ValueError:
            return False

    @property
    def listener_type(self) -> str:
        if self.tls_terminated:
            return "TERMINATED_HTTPS"
        return "HTTP" if self.mode == "http" else "TCP"


def _words(line: str) -> list[str]:
    """Split a config line into words the way HAProxy does: double quotes
    with backslash escapes (``\\xNN`` too), single quotes literal, ``#``
    starting a comment outside quotes."""
    if not any(c in line for c in "\"'\\"):
        return line.split("#", 1)[0].split()  # the common case, fast
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i, n = 0, len(line)
    quote: str | None = None
    while i < n:
        c = line[i]
        if quote is None and c == "#":
            break
        if quote is None and c.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
            continue
        in_word = True
        if quote != "'" and c == "\\" and i + 1 < n:
            nxt = line[i + 1]
            if nxt == "x" and i + 3 < n:
                try:
                    current.append(chr(int(line[i + 2:i + 4], 16)))
                    i += 4
                    continue
                except ValueError:
                    pass
            current.append(nxt)
            i += 2
            continue
        if c in "\"'" and quote in (None, c):
            quote = None if quote == c else c
            i += 1
            continue
        current.append(c)
        i += 1
    if in_word:
        words.append("".join(current))
    return words


words = _words  # public: confpaths reads every line the way HAProxy does


def sections(lines: list[str]) -> list[Section]:
    found: list[tuple[str, str, int]] = []
    for index, line in enumerate(lines):
        if line[:1].isspace():
            continue
        words = _words(line)
        if words and words[0] in _SECTION_KEYWORDS:
            found.append((words[0], words[1] if len(words) > 1 else "", index))
    result = []
    for i, (kind, name, start) in enumerate(found):
        end = found[i + 1][2] if i + 1 < len(found) else len(lines)
        result.append(Section(kind, name, start, end))
    return result


def _section_lines(lines: list[str], section: Section) -> list[list[str]]:
    return [_words(line) for line in lines[section.start + 1:section.end]]


def frontends(text: str) -> list[Frontend]:
    lines = text.splitlines()
    default_mode = "tcp"
    result = []
    for section in sections(lines):
        body = _section_lines(lines, section)
        modes = [w[1] for w in body if len(w) > 1 and w[0] == "mode"]
        if section.kind == "defaults":
            default_mode = modes[-1] if modes else default_mode
        elif section.kind in ("frontend", "listen"):
            tls = any(w and w[0] == "bind" and "ssl" in w and "crt" in w for w in body)
            result.append(Frontend(section.name, modes[-1] if modes else default_mode, tls))
    return result


def global_setting(text: str, keyword: str) -> list[str] | None:
    """Words after ``keyword`` in the global section (first occurrence)."""
    lines = text.splitlines()
    for section in sections(lines):
        if section.kind == "global":
            for words in _section_lines(lines, section):
                if words and words[0] == keyword:
                    return words[1:]
    return None


def stats_socket(text: str) -> tuple[str, bool] | None:
    """(path, admin level) of the first unix stats socket."""
    lines = text.splitlines()
    for section in sections(lines):
        if section.kind != "global":
            continue
        for words in _section_lines(lines, section):
            if len(words) >= 3 and words[:2] == ["stats", "socket"]:
                path = words[2].removeprefix("unix@")
                if not path.startswith("/"):
                    continue
                admin = "level" in words and words[words.index("level") + 1:][:1] == ["admin"]
                return path, admin
    return None


def server_state_file(text: str) -> str | None:
    words = global_setting(text, "server-state-file")
    if not words:
        return None
    path = words[0]
    if path.startswith("/"):
        return path
    base = global_setting(text, "server-state-base")
    return f"{base[0].rstrip('/')}/{path}" if base else None


_SERVER_RE = re.compile(r"^(\s*)server\s+(\S+)\s+(\S+)(.*)$")


def find_server(lines: list[str], backend: str, server: str) -> int | None:
    for section in sections(lines):
        if section.kind in ("backend", "listen") and section.name == backend:
            for index in range(section.start + 1, section.end):
                match = _SERVER_RE.match(lines[index])
                if match and match.group(2) == server:
                    return index
    return None


def backend_section(lines: list[str], backend: str) -> Section | None:
    for section in sections(lines):
        if section.kind in ("backend", "listen") and section.name == backend:
            return section
    return None


def split_server_line(line: str) -> tuple[str, str, str, list[str]]:
    """(indent, name, address, options) of a ``server`` line."""
    match = _SERVER_RE.match(line.split("#", 1)[0].rstrip())
    if not match:
        raise ValueError(f"not a server line: {line!r}")
    return match.group(1), match.group(2), match.group(3), match.group(4).split()


def set_option(options: list[str], keyword: str, value: str | None) -> list[str]:
    """Set ``keyword value`` in place (appended if absent), or drop it when
    value is None."""
    out: list[str] = []
    i, found = 0, False
    while i < len(options):
        if options[i] == keyword and i + 1 < len(options):
            if value is not None and not found:
                out += [keyword, value]
            found = True
            i += 2
            continue
        out.append(options[i])
        i += 1
    if value is not None and not found:
        out += [keyword, value]
    return out


def set_flag(options: list[str], flag: str, present: bool) -> list[str]:
    out = [w for w in options if w != flag]
    return [*out, flag] if present else out
