"""Run OpenStack Octavia's amphora agent (the baseline) without touching the
host: started under ``unshare --mount``, it gets a private /var/log (it
insists on writing /var/log/amphora-agent.log) and then becomes the agent."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def main() -> None:
    logdir = tempfile.mkdtemp(prefix="octavia-agent-log-")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "--bind", logdir, "/var/log"], check=True)
    os.execv(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
