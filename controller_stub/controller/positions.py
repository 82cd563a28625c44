"""Octavia's L7 policy positions: a listener's policies are numbered 1..n.

A policy created or moved to position p takes it and the others shift, in
order, around it; no position, or one past the end, means last.
"""

from __future__ import annotations

from controller_stub.controller import models
from controller_stub.controller.constants import PENDING_DELETE


def renumber(listener: models.Listener, moved: models.L7Policy | None = None,
             position: int | None = None) -> None:
    """Number the listener's live policies 1..n; ``moved`` goes to ``position``."""
    live = [p for p in sorted(listener.l7policies,
                              key=lambda p: (p.position or 0, p.created_at or models.utcnow()))
            if p.provisioning_status != PENDING_DELETE and p is not moved]
    if moved is not None:
        index = len(live) if position is None else max(0, min(position - 1, len(live)))
        live.insert(index, moved)
    for number, policy in enumerate(live, start=1):
        policy.position = number
