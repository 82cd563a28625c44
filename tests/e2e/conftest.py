"""End-to-end fixtures: the local fabric from the network tier (one place)."""

from tests.integration.network.conftest import (  # noqa: F401 - fixtures
    Plugged,
    amphora,
    client,
    fabric,
    no_leftovers,
    plugged,
)
