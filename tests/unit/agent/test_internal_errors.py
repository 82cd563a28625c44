"""A 500 never carries exception text: it can hold paths, addresses or secrets."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

SECRET = "heartbeat_key=s3cr3t in /etc/octavia/amphora-agent.conf"


def test_unexpected_exception_is_a_generic_json_500(app: Flask,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    @app.get("/test/boom")
    def boom():  # type: ignore[no-untyped-def]
        raise RuntimeError(SECRET)

    with caplog.at_level(logging.ERROR, logger="amphora_agent.app"):
        response = app.test_client().get("/test/boom")
    assert response.status_code == 500
    body = response.get_json()
    assert body["message"] == "Internal Server Error"
    assert "s3cr3t" not in response.get_data(as_text=True)
    assert "/etc/octavia" not in response.get_data(as_text=True)
    assert SECRET in caplog.text  # the operator still gets it, in the log
