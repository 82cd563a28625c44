"""Typed load-balancer model, capability table, TLS policy and HAProxy renderer.

Public API (what the agent and the controller import):

- :class:`LoadBalancer` (``LoadBalancer.from_dict``) and the other model classes
- :func:`render` with :class:`Target` and :class:`RenderOptions`
- :func:`peer_name` (the ``-L`` name the agent passes to HAProxy)
- :class:`ValidationError` / :class:`CapabilityError`
- :data:`FEATURES`, :func:`capability_map`, :func:`supports`, :func:`require`
- :class:`TLSPolicy`
"""

from haproxy_templates.capabilities import (
    FEATURES,
    Versions,
    capability_map,
    require,
    supports,
)
from haproxy_templates.errors import CapabilityError, ValidationError
from haproxy_templates.model import (
    Amphora,
    HealthMonitor,
    L7Policy,
    L7Rule,
    Listener,
    ListenerTLS,
    LoadBalancer,
    Member,
    Pool,
    PoolTLS,
    SessionPersistence,
    cert_filename,
)
from haproxy_templates.quoting import quote
from haproxy_templates.render import (
    DEFAULT_BASE_PATH,
    DEFAULT_CERT_DIR,
    Defaults,
    RenderOptions,
    backend_name,
    peer_name,
    render,
)
from haproxy_templates.target import Target
from haproxy_templates.tls import TLSPolicy
from haproxy_templates.versions import Version

__all__ = [
    "DEFAULT_BASE_PATH",
    "DEFAULT_CERT_DIR",
    "FEATURES",
    "Amphora",
    "CapabilityError",
    "Defaults",
    "HealthMonitor",
    "L7Policy",
    "L7Rule",
    "Listener",
    "ListenerTLS",
    "LoadBalancer",
    "Member",
    "Pool",
    "PoolTLS",
    "RenderOptions",
    "SessionPersistence",
    "TLSPolicy",
    "Target",
    "ValidationError",
    "Version",
    "Versions",
    "backend_name",
    "capability_map",
    "cert_filename",
    "peer_name",
    "quote",
    "render",
    "require",
    "supports",
]
