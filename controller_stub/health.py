"""Heartbeat verification for the controller and operators' tools.

The envelope code lives in :mod:`amphora_contract.heartbeat` (both sides
share it); this module is the controller's stable import path for it.
"""

from __future__ import annotations

from amphora_contract.heartbeat import (
    HeartbeatError,
    HeartbeatVerifier,
    RejectReason,
    derive_amphora_key,
    unwrap,
)

__all__ = ["HeartbeatError", "HeartbeatVerifier", "RejectReason", "derive_amphora_key",
           "unwrap"]
