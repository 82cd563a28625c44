"""The HAProxy peer name of an amphora: the renderer writes it into ``peers``
sections and the agent passes it to HAProxy as ``-L``; both must agree with
each other and with Octavia, whose controller renders the same name."""

from __future__ import annotations

import base64
import hashlib


def peer_name(amphora_id: str) -> str:
    """HAProxy peer name for an amphora, the same as Octavia derives it.

    Base64 of the SHA-1 of the id with ``_`` and ``-`` as the two extra
    characters (Octavia's alphabet: ``+`` becomes ``_``, ``/`` becomes ``-``),
    padding stripped, and a leading ``-`` replaced by ``x`` because HAProxy
    would read it as a command-line option of ``-L``.
    """
    digest = hashlib.sha1(amphora_id.encode("utf-8"), usedforsecurity=False).digest()
    name = base64.b64encode(digest, altchars=b"_-").decode("ascii").rstrip("=")
    return "x" + name[1:] if name.startswith("-") else name
