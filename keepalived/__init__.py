"""Typed VRRP model and keepalived config renderer for an ACTIVE_STANDBY pair.

Public API (docs/keepalived.md):

- :class:`VrrpInstance` with :class:`Role`, :class:`HaproxyTrack`, :class:`Bfd`,
  :class:`Garp`, :class:`CheckScript`
- :func:`render` (``VrrpInstance`` -> keepalived.conf text)
- :class:`ValidationError`
"""

from keepalived.errors import ValidationError
from keepalived.model import (
    DEFAULT_ADVERT_INT,
    Bfd,
    CheckScript,
    Garp,
    HaproxyTrack,
    Role,
    VrrpInstance,
)
from keepalived.render import render

__all__ = ["DEFAULT_ADVERT_INT", "Bfd", "CheckScript", "Garp", "HaproxyTrack", "Role",
           "ValidationError", "VrrpInstance", "render"]
