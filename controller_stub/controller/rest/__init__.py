"""Octavia's load-balancer API v2 over the controller engine (docs/api.md).

``create_app`` builds the Flask app; ``resources`` holds one module per
resource, each a thin blueprint over plain functions that call
:class:`~controller_stub.controller.api.Controller`.
"""

from controller_stub.controller.rest.app import create_app

__all__ = ["create_app"]
