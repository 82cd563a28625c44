"""Scrape the statistics exporter (parsed by prometheus_client's own parser),
and the state store's statistics in the exporter's names, to compare them."""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from controller_stub.controller import models

Series = dict[tuple[str, str, str], float]  # (sample name, amphora id, listener id) → value


def scrape(port: int, host: str = "127.0.0.1") -> Series:
    """The ``amphora_listener_*`` samples served on ``host``:``port``."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, sample.labels["amphora_id"], sample.labels["listener_id"]):
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name.startswith("amphora_listener_")
            for sample in family.samples if not sample.name.endswith("_created")}


def stored(sessions: Any) -> Series:
    """The state store's ``listener_statistics`` rows as the exporter names them."""
    out: Series = {}
    with sessions() as session:
        for row in session.scalars(select(models.ListenerStatistics)):
            key = (row.amphora_id, row.listener_id)
            out[("amphora_listener_active_connections", *key)] = row.active_connections
            for name in ("bytes_in", "bytes_out", "request_errors", "total_connections"):
                out[(f"amphora_listener_{name}_total", *key)] = getattr(row, name)
    return out
