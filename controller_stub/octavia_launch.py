"""Run OpenStack Octavia's amphora agent without touching the host.

Started as ``unshare --mount -- PYTHON octavia_launch.py [--state DIR --netns NAME
--interfaces DIR] AGENT ARGS…`` (stdlib only: it runs under Octavia's virtualenv). In its
private mount namespace it gives the agent what an amphora image would:

- a private /var/log (the agent insists on /var/log/amphora-agent.log): DIR/log
  with ``--state``, else a new temporary directory;
- with ``--state``: copy-on-write overlays of /etc, /var/lib,
  /usr/lib/systemd/system, /usr/local/bin and /run whose changes land in DIR
  (its interface files, HAProxy's default user-group file, its systemd units,
  the image's ``lvs-masquerade.sh``, keepalived's pid files), ``systemctl`` from
  :mod:`octavia_systemctl` first on PATH (no systemd runs here), and
  Octavia's fixed HAProxy namespace ``amphora-haproxy`` bound to the network
  namespace NAME, so the host sees it, and the processes in it, under NAME.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# /run too: keepalived keeps its children's pid files there under fixed names
OVERLAID = ("/etc", "/var/lib", "/usr/lib/systemd/system", "/usr/local/bin", "/run")
OCTAVIA_NAMESPACE = "amphora-haproxy"
USER_GROUP = "/var/lib/octavia/haproxy-default-user-group.conf"
# An Octavia image has this helper: its VIP interface files run it on up and
# down (UDP and SCTP leaving the VIP masqueraded, for LVS listeners). Run by
# amphora-interface inside the HAProxy namespace, so nft sees that one only.
MASQUERADE = "/usr/local/bin/lvs-masquerade.sh"
_MASQUERADE_SCRIPT = """#!/bin/sh
set -e
case "$2" in ipv4) family=ip ;; ipv6) family=ip6 ;; *) exit 1 ;; esac
chain="masq-$3"
case "$1" in
add)
    nft add table "$family" octavia
    nft add chain "$family" octavia "$chain" "{ type nat hook postrouting priority 100; }"
    nft add rule "$family" octavia "$chain" oifname "$3" meta l4proto "{ udp, sctp }" masquerade
    ;;
delete) nft delete chain "$family" octavia "$chain" || true ;;
*) exit 1 ;;
esac
"""


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _overlay(state: Path, target: str) -> None:
    name = target.strip("/").replace("/", "-")
    upper, work = state / "overlay" / name, state / "overlay" / f"{name}.work"
    upper.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    _mount("-t", "overlay", "overlay", "-o",
           f"lowerdir={target},upperdir={upper},workdir={work}", target)


def _amphora(state: Path, netns: str, interfaces: Path) -> None:
    netns_dir = state / "netns"
    netns_dir.mkdir(parents=True, exist_ok=True)
    (netns_dir / OCTAVIA_NAMESPACE).touch()
    _mount("--bind", f"/run/netns/{netns}", str(netns_dir / OCTAVIA_NAMESPACE))
    for target in OVERLAID:
        _overlay(state, target)
    _mount("--rbind", str(netns_dir), "/run/netns")  # with the namespace bound in it
    for directory in ("/etc/octavia/interfaces", "/var/lib/octavia"):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    # the agent writes interface files where its config says, amphora-interface
    # reads them from Octavia's fixed directory: one directory
    interfaces.mkdir(mode=0o700, parents=True, exist_ok=True)
    _mount("--bind", str(interfaces), "/etc/octavia/interfaces")
    with open(MASQUERADE, "w", encoding="utf-8") as handle:
        handle.write(_MASQUERADE_SCRIPT)
    os.chmod(MASQUERADE, 0o755)  # noqa: S103 (an executable, in the private overlay)
    # what the image's haproxy element writes: the group HAProxy drops to
    with open(USER_GROUP, "w", encoding="utf-8") as handle:
        handle.write("global\n    group haproxy\n")
    shims = state / "bin"
    shims.mkdir(exist_ok=True)
    systemctl = shims / "systemctl"
    systemctl.write_text(f"#!/bin/sh\nexec {sys.executable} "
                         f"{Path(__file__).with_name('octavia_systemctl.py')} "
                         f"--state {state} \"$@\"\n", encoding="utf-8")
    systemctl.chmod(0o755)
    os.environ["PATH"] = os.pathsep.join(
        [str(shims), str(Path(sys.executable).parent),
         os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")])


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--netns")
    parser.add_argument("--interfaces", type=Path)
    args, agent = parser.parse_known_args()
    _mount("--make-rprivate", "/")
    if args.state is not None:  # kept (and removed) with the amphora's files
        logs = args.state / "log"
        logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:
        logs = Path(tempfile.mkdtemp(prefix="octavia-agent-log-"))
    _mount("--bind", str(logs), "/var/log")
    if args.state is not None:
        _amphora(args.state, args.netns, args.interfaces)
    os.execv(agent[0], agent)  # noqa: S606 (an argument list: the agent becomes us)


if __name__ == "__main__":
    main()
