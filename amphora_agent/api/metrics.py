"""Extension: Prometheus metrics (``GET /1.0/ext/metrics``, docs/agent.md "Metrics")."""

from __future__ import annotations

from flask import Blueprint, Response

from amphora_agent import metrics
from amphora_agent.app import current_agent

blueprint = Blueprint("metrics", __name__)
EXTENSIONS = ("metrics",)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@blueprint.get("/1.0/ext/metrics")
def scrape():  # type: ignore[no-untyped-def]
    return Response(metrics.render(current_agent().config), content_type=CONTENT_TYPE)
