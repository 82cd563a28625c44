"""Scrape a Prometheus exporter and parse it with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

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
