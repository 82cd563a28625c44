"""The one error type the model, policy and renderer raise.

Callers (the controller's API, the CLI) turn it into a 400-style answer, so it
always names the offending field in the LB document, e.g.
``listeners[0].protocol_port: must be 1..65535``.
"""

from __future__ import annotations


class ValidationError(ValueError):
    """Invalid load-balancer input; ``field`` is a path into the input document."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)

    def prefixed(self, prefix: str) -> ValidationError:
        """The same error, re-rooted under ``prefix`` (nested from_dict calls)."""
        sep = "" if not self.field or self.field.startswith("[") else "."
        return type(self)(f"{prefix}{sep}{self.field}", self.message)


class CapabilityError(ValidationError):
    """A requested feature the target HAProxy/OpenSSL lacks; the message names the version."""
