"""The one error the VRRP model and renderer raise; ``field`` names the input."""

from __future__ import annotations


class ValidationError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)
