"""Where the agent's worker finds the end of a buffered request."""

from __future__ import annotations

from amphora_agent.worker import RequestScanner


def test_scanner_tells_complete_requests() -> None:
    scanner = RequestScanner(max_body=100, head_limit=1024)
    buf = bytearray(b"PUT /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc")
    assert not scanner.complete(buf)
    buf += b"de"
    assert scanner.complete(buf)

    scanner = RequestScanner(max_body=100, head_limit=1024)
    buf = bytearray(b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert not scanner.complete(buf)
    buf += b"0\r\n"
    assert not scanner.complete(buf)
    buf += b"\r\n"
    assert scanner.complete(buf)

    # over the limit: complete, the app answers 413 without the rest
    scanner = RequestScanner(max_body=100, head_limit=1024)
    assert scanner.complete(bytearray(b"PUT /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n"))
    scanner = RequestScanner(max_body=4, head_limit=1024)
    assert scanner.complete(bytearray(
        b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabcde"))
    # a head that never ends is handed over once past the limit
    scanner = RequestScanner(max_body=100, head_limit=64)
    assert not scanner.complete(bytearray(b"GET / HTTP/1.1\r\nX: " + b"a" * 40))
    assert scanner.complete(bytearray(b"GET / HTTP/1.1\r\nX: " + b"a" * 80))
    # framing it cannot vouch for goes to gunicorn's parser (400)
    scanner = RequestScanner(max_body=100, head_limit=1024)
    assert scanner.complete(bytearray(
        b"PUT /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"))


def test_scanner_sees_a_client_waiting_for_100_continue() -> None:
    head = b"PUT /x HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"
    scanner = RequestScanner(max_body=100, head_limit=1024)
    assert not scanner.complete(bytearray(head))
    assert scanner.expects_continue
    scanner = RequestScanner(max_body=100, head_limit=1024)  # HTTP/1.0 ignores it
    assert not scanner.complete(bytearray(head.replace(b"HTTP/1.1", b"HTTP/1.0")))
    assert not scanner.expects_continue
