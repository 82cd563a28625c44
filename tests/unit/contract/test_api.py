"""The API rules both sides share: error bodies, the retry signal, certificate names."""

from __future__ import annotations

import pytest

from amphora_contract import api
from haproxy_templates.model import cert_filename


@pytest.mark.parametrize(("status", "body", "retry"), [
    (404, None, True),  # not JSON: something in front of the agent
    (404, {"message": "Invalid VIP", "details": api.NOT_READY_DETAIL}, True),
    (404, {"message": "Not Found", "details": "no such load balancer"}, False),
    (404, {"error": "Not Found", "http_code": 404}, False),
    (400, {"message": "Invalid VIP", "details": api.NOT_READY_DETAIL}, False),
    (503, None, False),
])
def test_only_the_not_ready_404_is_retried(status: int, body: object, retry: bool) -> None:
    assert api.is_not_ready(status, body) is retry


def test_error_detail_reads_both_body_shapes() -> None:
    assert api.error_detail(api.error_body("Invalid request", "bad bind")) == "bad bind"
    assert api.error_detail(api.error_body("Conflict")) == "Conflict"
    assert api.error_detail(api.routing_error_body("Method Not Allowed", 405)) == \
        "Method Not Allowed"
    assert api.error_detail(["not", "a", "body"]) is None


@pytest.mark.parametrize("name", ["a.pem\n", ".hidden.pem", "a..b.pem", "x" * 201 + ".pem",
                                  "a/b.pem", "a.pem.bak", ".pem"])
def test_the_renderer_never_names_a_certificate_the_agent_refuses(name: str) -> None:
    assert not api.is_pem_filename(name)
    with pytest.raises(ValueError, match="PEM filename"):
        cert_filename(name)


@pytest.mark.parametrize("name", ["tls.pem", "sni-1_2.pem", "x" * 200 + ".pem"])
def test_plain_certificate_names_are_kept(name: str) -> None:
    assert api.is_pem_filename(name)
    assert cert_filename(name) == name
