"""``routeplane guest``: the in-VM daemon (``routeplane.guest``) as a subcommand.

The daemon itself is one standard-library module, so an image can carry it as a single
file; this only puts it beside the other commands for machines that have routeplane
installed (the lab's VMs).
"""

from __future__ import annotations

import argparse
from typing import Any

from routeplane import guest


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("guest", help=guest.DESCRIPTION)
    guest.add_arguments(parser)
    parser.set_defaults(run=guest.run)
