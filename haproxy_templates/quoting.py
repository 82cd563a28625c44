"""The single HAProxy quoting function every user-supplied value goes through.

HAProxy's parser (configuration manual, section 2.2) splits a line into words
honouring backslash escapes, weak ("...") and strong ('...') quotes. We always
emit one weakly quoted word and escape, inside it, everything that could end
the word or change its meaning: the double quote, the backslash, ``$``
(environment expansion happens inside double quotes) and ``#``. Every byte
outside printable ASCII, including CR/LF and non-ASCII UTF-8, becomes a
``\\xNN`` escape, so a value can never start a new line, a comment or a new
keyword, and the config file stays pure ASCII.

Some arguments are additionally interpreted as HAProxy log-format strings
(redirect locations, header values); there ``%`` starts a sample expression,
so ``logformat=True`` doubles it first.
"""

from __future__ import annotations

_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " !%&'()*+,-./:;<=>?@[]^_`{|}~"
)
_ESCAPED = {'"': '\\"', "\\": "\\\\", "$": "\\$", "#": "\\#"}


def quote(value: object, logformat: bool = False) -> str:
    """Return ``value`` as exactly one HAProxy configuration word."""
    text = str(value)
    if logformat:
        text = text.replace("%", "%%")
    out = ['"']
    for ch in text:
        if ch in _SAFE:
            out.append(ch)
        elif ch in _ESCAPED:
            out.append(_ESCAPED[ch])
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
    out.append('"')
    return "".join(out)


def unquote(word: str) -> str:
    """Inverse of :func:`quote` (for tests and tooling that read configs back)."""
    if len(word) < 2 or word[0] != '"' or word[-1] != '"':
        raise ValueError(f"not a quoted word: {word!r}")
    body = word[1:-1]
    raw = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt == "x":
                raw.append(int(body[i + 2 : i + 4], 16))
                i += 4
                continue
            raw.extend(nxt.encode())
            i += 2
            continue
        raw.extend(ch.encode())
        i += 1
    return raw.decode("utf-8", "surrogatepass")
