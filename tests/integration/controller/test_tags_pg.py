"""Tags in a PostgreSQL store: migration 0005 over rows from before it, and JSON
lists stored and replaced."""

from __future__ import annotations

import time

import pytest

from controller_stub.controller.pgcluster import ThrowawayPostgres
from tests.unit.controller.rest_helpers import check_tags_after_upgrade

pytestmark = pytest.mark.root


def test_tags_after_upgrade_on_postgresql(postgres: ThrowawayPostgres) -> None:
    check_tags_after_upgrade(postgres.create_database(f"tags_{int(time.time() * 1000)}"))
