"""A small reader for HAProxy's line/word syntax (manual section 2.2), for tests.

It splits a config the way HAProxy's parser does — backslash escapes, weak
and strong quotes, ``#`` comments — so tests can compare the *structure* of
two configs: which lines and keywords exist, and where a quoted value sits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    text: str
    quoted: bool


def split_line(line: str) -> list[Word]:
    words: list[Word] = []
    buf: list[str] = []
    quoted = False
    in_word = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch in " \t":
            if in_word:
                words.append(Word("".join(buf), quoted))
                buf, quoted, in_word = [], False, False
            i += 1
            continue
        if ch == "#":
            break  # comment to end of line
        in_word = True
        if ch == "\\":
            buf.append(line[i + 1] if i + 1 < len(line) else "")
            i += 2
            continue
        if ch == '"':
            quoted = True
            i += 1
            while i < len(line) and line[i] != '"':
                if line[i] == "\\":
                    i += 1
                    if line[i] == "x":
                        buf.append(chr(int(line[i + 1:i + 3], 16)))
                        i += 3
                        continue
                buf.append(line[i])
                i += 1
            if i >= len(line):
                raise ValueError(f"unterminated double quote in {line!r}")
            i += 1
            continue
        if ch == "'":
            quoted = True
            end = line.index("'", i + 1)
            buf.append(line[i + 1:end])
            i = end + 1
            continue
        buf.append(ch)
        i += 1
    if in_word:
        words.append(Word("".join(buf), quoted))
    return words


def skeleton(config: str) -> list[tuple[str, ...]]:
    """Every non-empty line as its words, quoted words replaced by a placeholder."""
    out = []
    for line in config.splitlines():
        words = split_line(line)
        if words:
            out.append(tuple("<Q>" if w.quoted else w.text for w in words))
    return out


def quoted_values(config: str) -> set[str]:
    """Decoded (byte-level) contents of every quoted word."""
    values = set()
    for line in config.splitlines():
        for word in split_line(line):
            if word.quoted:
                values.add(word.text.encode("latin-1").decode("utf-8", "replace"))
    return values
