"""The controller fixtures (a saved fabric with members and a client)."""

from tests.integration.controller.conftest import site  # noqa: F401
