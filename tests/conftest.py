"""Suite-wide rules.

A required test that skips is a failure in this project: the run ends red
if anything was skipped, so missing root, HAProxy or Glance can never pass
silently.
"""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or os.environ.get("AMPHORA_ALLOW_SKIPS") == "1":
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped and exitstatus == 0:
        reporter.write_line(
            f"FAILED: {len(skipped)} test(s) skipped; skips are failures here "
            "(set AMPHORA_ALLOW_SKIPS=1 only for local partial runs)", red=True)
        session.exitstatus = 1
