"""The served resources: one module each, exposing ``blueprint``; adding a
resource is its module plus one line in :data:`MODULES`.

A module declares its request bodies (``schema.Body``: strict, unknown fields
refused, Octavia's field names and defaults) and its response model
(``schema.Out``), and each handler once with ``schema.route`` (rule, method,
status, body and response models: the Flask rule and the OpenAPI entry at
once). Handlers stay thin: ``parse`` the body, ``common.owned`` /
``common.mutable_lb`` for Octavia's 404/403/409, one engine call, then
``common.answer`` / ``common.answer_list`` (filters, sorting, pages, fields).
Rules are relative to the API root (``/lbaas/...``, ``/octavia/...``): the app
serves every blueprint under both ``/v2`` and ``/v2.0``.
"""

from __future__ import annotations

from controller_stub.controller.rest.resources import (
    amphorae,
    catalog,
    healthmonitors,
    l7policies,
    listeners,
    loadbalancers,
    members,
    networks,
    pools,
    quotas,
)

MODULES = (loadbalancers, listeners, pools, members, healthmonitors, networks, l7policies,
           catalog, quotas, amphorae)
