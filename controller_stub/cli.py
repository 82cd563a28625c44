"""`amphora-ctl`: the operator's command line for the lightweight controller.

Each sub-command lives in its own module under ``controller_stub.commands`` and
exposes ``register(subparsers)``; this module only assembles them, so adding a
command never means editing another command's code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules under controller_stub.commands, each with register(subparsers).
COMMAND_MODULES: tuple[str, ...] = ("image", "render", "stats", "lbaas")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amphora-ctl",
        description="Amphora controller: render configs, manage images, drive amphorae.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"controller_stub.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return int(handler(args) or 0)
    except Exception as exc:  # one line for the operator, not a traceback
        if getattr(args, "debug", False):
            raise
        print(f"amphora-ctl {args.command}: error: {describe(exc)}", file=sys.stderr)
        return 1


def describe(exc: BaseException) -> str:
    """One line: an API error's faultstring and HTTP status, else the exception's text."""
    if type(exc).__name__ in ("DiscoveryFailure", "ConnectFailure", "ConnectTimeout"):
        return f"cannot reach the API ({' '.join(str(exc).split())})"
    status = getattr(exc, "status_code", None)
    if status is not None:
        detail = getattr(exc, "details", None) or getattr(exc, "message", None) or str(exc)
        return f"{' '.join(str(detail).split())} (HTTP {status})"
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
