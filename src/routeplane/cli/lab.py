"""``routeplane lab``: a whole routed cloud on one machine, in network namespaces.

``up`` (fabric, access node with BIRD, compute hosts with agents, the api on loopback),
``boot`` (a VM on a host), ``exec`` (a command in a node or VM), ``status``, ``env`` (the
``openstack`` CLI's variables), ``down``, ``image build`` (the QEMU guests' image) and
``console`` (a QEMU guest's serial console). The work is in ``routeplane.lab``; this module
only parses arguments and prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from routeplane.lab.topology import DEFAULT_API_PORT, DEFAULT_LAB
from routeplane.model.errors import RouteplaneError


def _say(text: str) -> None:
    print(text, flush=True)


def _up(args: argparse.Namespace) -> int:
    from routeplane.lab import lab as lab_ops  # noqa: PLC0415
    from routeplane.lab import report  # noqa: PLC0415
    from routeplane.lab.topology import lab_store  # noqa: PLC0415

    lab_state = lab_ops.up(
        args.name,
        args.hosts,
        args.port,
        empty=args.empty,
        openstack=args.openstack,
        store=lab_store(args.store),
        say=_say,
    )
    print(report.guide(lab_state), end="")
    return 0


def _boot(args: argparse.Namespace) -> int:
    from routeplane.lab import lab as lab_ops  # noqa: PLC0415

    vm = lab_ops.boot(
        args.name,
        args.vm,
        args.network,
        host=args.host,
        fixed_ips=args.fixed_ip or (),
        kind=args.kind,
        accel=args.accel,
        say=_say,
    )
    print(f"{vm.name}: ACTIVE on {vm.host} ({vm.namespace}, {vm.tap}) {' '.join(vm.addresses)}")
    return 0


def _exec(args: argparse.Namespace) -> int:
    from routeplane.lab import report  # noqa: PLC0415

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    return report.run_in(args.name, args.node, command)


def _console(args: argparse.Namespace) -> int:
    from routeplane.lab import report  # noqa: PLC0415

    print(report.console(args.name, args.vm), end="")
    return 0


def _status(args: argparse.Namespace) -> int:
    from routeplane.lab import report  # noqa: PLC0415

    print(report.status(args.name), end="")
    return 0


def _env(args: argparse.Namespace) -> int:
    from routeplane.lab import lab as lab_ops  # noqa: PLC0415
    from routeplane.lab import report  # noqa: PLC0415

    _, lab_state = lab_ops.open_lab(args.name)
    print(report.env_script(lab_state), end="")
    return 0


def _down(args: argparse.Namespace) -> int:
    from routeplane.lab import teardown  # noqa: PLC0415

    if not teardown.down(args.name, say=_say):
        print(f"lab {args.name}: nothing to remove")
    return 0


def _image_build(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415

    from routeplane.lab import cloud_image, image  # noqa: PLC0415

    if args.cloud:
        cloud = cloud_image.build(Path(args.cache), say=_say)
        print(f"{cloud.directory}: disk {cloud.disk.stat().st_size} bytes")
        return 0
    built = image.build(Path(args.cache), say=_say)
    inputs = (built.directory / "inputs.json").read_text()
    print(
        f"{built.directory}: kernel {built.release}, initramfs {built.initrd.stat().st_size} bytes"
    )
    print(inputs, end="")
    return 0


def _openstack_install(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415

    from routeplane.lab import openstack_install  # noqa: PLC0415

    venv = openstack_install.install(Path(args.venv) if args.venv else None, say=_say)
    print(f"{venv}: {' '.join(openstack_install.PINS)}")
    return 0


def _run(args: argparse.Namespace) -> int:
    # the lab's modules are imported where they are used: every ``routeplane`` command
    # (an agent too) builds this module's parser, and the lab's HTTP client is slow to load
    from routeplane.lab.netns import LabError  # noqa: PLC0415
    from routeplane.lab.neutron import ApiError  # noqa: PLC0415

    if os.geteuid() != 0:  # namespaces, BIRD's sockets, and a state file holding credentials
        print("routeplane lab: needs root", file=sys.stderr)
        return 1
    try:
        code: int = args.lab_run(args)
    except (LabError, ApiError, ValueError, RouteplaneError) as exc:
        print(f"routeplane lab: {exc}", file=sys.stderr)
        return 1
    return code


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "lab", help="a routed cloud on this machine, in network namespaces (issue #5)"
    )
    named = argparse.ArgumentParser(add_help=False)
    named.add_argument("--name", default=DEFAULT_LAB, help="the lab's name (default %(default)s)")
    labs = parser.add_subparsers(dest="lab_command", required=True, metavar="LAB_COMMAND")

    up = labs.add_parser(
        "up",
        parents=[named],
        help="build the lab and start its processes (--store etcd: on a 3-member etcd cluster)",
    )
    up.add_argument("--hosts", type=int, default=2, help="compute hosts (default %(default)s)")
    up.add_argument("--empty", action="store_true", help="create no networks")
    up.add_argument(
        "--openstack",
        action="store_true",
        help="also real Keystone, Placement, Nova and RabbitMQ on loopback (issue #16)",
    )
    up.add_argument(
        "--port",
        type=int,
        default=DEFAULT_API_PORT,
        help="api port on 127.0.0.1 (default %(default)s)",
    )
    up.set_defaults(lab_run=_up)

    boot = labs.add_parser("boot", parents=[named], help="boot a VM (a namespace) on a host")
    boot.add_argument("vm", metavar="NAME")
    boot.add_argument("--network", required=True, help="network name or id")
    boot.add_argument("--host", default="node1", help="compute host (default %(default)s)")
    boot.add_argument(
        "--fixed-ip", action="append", metavar="ADDRESS", help="a fixed IP (repeatable)"
    )
    boot.add_argument(
        "--kind",
        choices=("namespace", "qemu"),
        default="namespace",
        help="a namespace (default) or a QEMU guest on the tap (issue #15)",
    )
    boot.add_argument(
        "--accel", choices=("kvm", "tcg"), help="QEMU's accelerator (default: probed)"
    )
    boot.set_defaults(lab_run=_boot)

    console = labs.add_parser(
        "console", parents=[named], help="a QEMU guest's serial console, as logged"
    )
    console.add_argument("vm", metavar="NAME")
    console.set_defaults(lab_run=_console)

    run = labs.add_parser(
        "exec", parents=[named], help="run a command in a node: access, nodeN or a VM"
    )
    run.add_argument("node", metavar="NODE")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD")
    run.set_defaults(lab_run=_exec)

    images = labs.add_parser("image", help="the QEMU guests' image (issue #15)")
    image_commands = images.add_subparsers(dest="image_command", required=True)
    build = image_commands.add_parser(
        "build", help="build the guest image from Debian packages (cached by its inputs)"
    )
    build.add_argument(
        "--cache",
        default="/var/cache/routeplane",
        help="cache directory (default %(default)s)",
    )
    build.add_argument(
        "--cloud",
        action="store_true",
        help="the Debian cloud-init guest's image instead (mmdebstrap: minutes, then cached)",
    )
    build.set_defaults(lab_run=_image_build)

    stack = labs.add_parser("openstack", help="the lab's OpenStack (issue #16)")
    stack_commands = stack.add_subparsers(dest="openstack_command", required=True)
    install = stack_commands.add_parser(
        "install", help="build the venv of Keystone, Placement and Nova from PyPI (cached)"
    )
    install.add_argument("--venv", help="where (default $ROUTEPLANE_OPENSTACK_VENV or the cache)")
    install.set_defaults(lab_run=_openstack_install)

    labs.add_parser("status", parents=[named], help="namespaces, processes, BGP, VMs").set_defaults(
        lab_run=_status
    )
    labs.add_parser(
        "env", parents=[named], help="OS_* variables for the openstack CLI (for eval)"
    ).set_defaults(lab_run=_env)
    labs.add_parser("down", parents=[named], help="remove everything the lab made").set_defaults(
        lab_run=_down
    )
    parser.set_defaults(run=_run)
