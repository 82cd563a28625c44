"""Which agent the local compute driver starts in its amphorae.

By default an amphora runs this tree's agent. ``[compute] agent_venv`` names
a virtualenv holding another agent: the agent of an earlier Amphora release
(``agent_kind = amphora``), or OpenStack Octavia's own amphora agent
(``agent_kind = octavia``), so one controller can be checked against the
agents its amphorae may really run (docs/upgrades.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KINDS = ("amphora", "octavia")


@dataclass(frozen=True)
class AgentLaunch:
    """How to start an amphora's agent; ``venv`` None is this tree's agent."""

    venv: Path | None = None
    kind: str = "amphora"

    @classmethod
    def parse(cls, venv: str, kind: str) -> AgentLaunch:
        kind = (kind or "amphora").strip()
        if kind not in KINDS:
            raise ValueError(f"[compute] agent_kind: one of {', '.join(KINDS)}")
        if not venv.strip():
            if kind != "amphora":
                raise ValueError(f"[compute] agent_kind = {kind} needs agent_venv")
            return cls()
        path = Path(venv.strip())
        if not path.is_absolute():
            raise ValueError("[compute] agent_venv: an absolute path")
        if not os.access(path / "bin" / "amphora-agent", os.X_OK):
            raise ValueError(f"[compute] agent_venv: no bin/amphora-agent in {path}")
        return cls(path, kind)

    @property
    def octavia(self) -> bool:
        return self.kind == "octavia"

    def launcher(self, root: Path, haproxy_namespace: str) -> list[str] | None:
        """The command that starts the agent of the amphora whose files are under
        ``root``, without ``--config-file``; None: this tree's agent."""
        if self.venv is None:
            return None
        agent = str(self.venv / "bin" / "amphora-agent")
        if not self.octavia:
            return [agent]
        # Octavia's agent expects an amphora image's host: a private mount
        # namespace gives it one (controller_stub/octavia_launch.py)
        return ["unshare", "--mount", "--", str(self.venv / "bin" / "python"),
                str(Path(__file__).with_name("octavia_launch.py")),
                "--state", str(root / "octavia"), "--netns", haproxy_namespace,
                "--interfaces", str(root / "interfaces"), agent]
