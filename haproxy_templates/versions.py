"""Version numbers as HAProxy, OpenSSL and distro packages spell them.

The agent reports distro package versions (``2.6.12-1+deb12u4``, maybe with
an epoch ``1:2.6.12-1``), ``haproxy -vv`` prints ``HAProxy version 2.6.12-1+deb12u4
2026/10/17``, development builds say ``2.8-dev3`` and OpenSSL says ``OpenSSL
3.0.22 25 Aug 2026`` or ``1.1.1w``. Capabilities only need the numeric
major.minor.patch, so that is all :class:`Version` keeps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_RE = re.compile(r"(?:^|[\s:v])(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str | Version) -> Version:
        """Parse the first dotted number in ``text``; raise ValueError if none."""
        if isinstance(text, Version):
            return text
        match = _VERSION_RE.search(" " + str(text).strip())
        if match is None:
            raise ValueError(f"no version number in {text!r}")
        major, minor, patch = match.groups()
        return cls(int(major), int(minor), int(patch or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def short(self) -> str:
        """``major.minor``: how HAProxy names its branches (and how messages cite them)."""
        return f"{self.major}.{self.minor}"
