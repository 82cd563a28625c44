"""The served resources: one module each, exposing ``blueprint``; adding a
resource is its module plus one line in :data:`MODULES`."""

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
