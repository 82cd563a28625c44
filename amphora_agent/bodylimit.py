"""The request-body limit, enforced once for every endpoint.

Werkzeug checks ``Content-Length`` only when a handler opens the stream, and
a chunked body (no ``Content-Length``) read with ``get_data()`` is cut at the
limit without an error: a truncated certificate or config would be written.
So before any handler runs, a declared length over ``max_body_size`` is a
413, and a chunked body is read here, up to the limit plus one byte, into
memory: over the limit it is a 413, otherwise the handler sees a complete
body with a known length.
"""

from __future__ import annotations

import io

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

READ_SIZE = 64 * 1024


def enforce(limit: int) -> None:
    """Raise 413 when the request body exceeds ``limit`` bytes."""
    declared = request.content_length
    if declared is not None:
        if declared > limit:
            raise RequestEntityTooLarge()
        return
    environ = request.environ
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return
    stream = environ["wsgi.input"]
    buffer = io.BytesIO()
    while chunk := stream.read(min(READ_SIZE, limit + 1 - buffer.tell())):
        buffer.write(chunk)
        if buffer.tell() > limit:
            raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(buffer.getvalue())
    environ["CONTENT_LENGTH"] = str(buffer.tell())
