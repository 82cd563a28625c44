"""``amphora-agent``: start the agent from its config file."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from amphora_agent import config as agent_config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amphora-agent",
                                     description="Amphora agent (Octavia amphora API 1.0).")
    parser.add_argument("--config-file", default=agent_config.DEFAULT_CONFIG_FILE,
                        help="agent INI file (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="validate the config and exit")
    args = parser.parse_args(argv)
    try:
        config = agent_config.load(args.config_file)
    except agent_config.ConfigError as exc:
        print(f"amphora-agent: config error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"amphora-agent: {args.config_file} is valid")
        return 0
    logging.basicConfig(level=logging.DEBUG if config.debug else logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    from amphora_agent.server import AgentServer

    try:
        server = AgentServer(config)
    except (OSError, ValueError) as exc:
        print(f"amphora-agent: cannot start: {exc}", file=sys.stderr)
        return 2
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
