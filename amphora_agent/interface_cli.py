"""``amphora-interface up|down NAME|all``: re-apply plugged interfaces from their files.

Run at boot (before the agent) and safe to run any time: applying is
idempotent, and it takes the same lock as the agent's plug API.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from amphora_agent import config as agent_config
from amphora_agent.errors import ApiError
from amphora_agent.network.interfaces import InterfaceFileError, valid_name
from amphora_agent.network.links import LinkError
from amphora_agent.network.plug import Networking


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="amphora-interface",
        description="Bring plugged amphora interfaces up or down from their interface files.")
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("interface", help="ethN, or 'all'")
    parser.add_argument("--config-file", default=agent_config.DEFAULT_CONFIG_FILE,
                        help="agent INI file (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.interface != "all" and not valid_name(args.interface):
        parser.error(f"interface must be ethN or 'all', not {args.interface!r}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = agent_config.load(args.config_file)
        networking = Networking.from_config(config)
        names = None if args.interface == "all" else [args.interface]
        done = networking.up(names) if args.action == "up" else networking.down(names)
    except (agent_config.ConfigError, InterfaceFileError, LinkError, LookupError,
            ApiError, OSError) as exc:
        print(f"amphora-interface: {exc}", file=sys.stderr)
        return 1
    print(f"amphora-interface: {args.action}: {', '.join(done) or 'nothing to do'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
