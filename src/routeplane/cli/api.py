"""``routeplane api``: serve the Neutron-compatible API (and identity) over HTTP.

The composition root of the api: it opens the store, builds the services and the
identity from the config file, and runs the ASGI app under uvicorn.
"""

from __future__ import annotations

import argparse
import logging
import tomllib
from pathlib import Path
from typing import Any

from routeplane.cli.store import open_creating
from routeplane.model.errors import InvalidRequest


def load_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidRequest(f"cannot read config file {path}: {exc}") from exc


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--listen takes HOST:PORT, not {value!r}")
    return host, int(port)


def _run(args: argparse.Namespace) -> int:
    # here, not at the top: every ``routeplane`` command builds this module's parser, and
    # the web stack alone takes a third of a second to import (an agent's start-up)
    import uvicorn  # noqa: PLC0415

    from routeplane.api.app import create_app  # noqa: PLC0415
    from routeplane.api.keystone_tokens import KeystoneTokens  # noqa: PLC0415
    from routeplane.services.registry import Services  # noqa: PLC0415
    from routeplane.services.security.identity import Identity, IdentityConfig, shared_secret  # noqa: PLC0415

    raw = load_config(args.config)
    if args.admin_token:
        raw["admin_token"] = args.admin_token
    config = IdentityConfig.from_dict(raw)
    store_url = args.store if args.store_given else raw.get("store", args.store)
    store = open_creating(store_url)
    try:
        identity = Identity(config, shared_secret(store))
        # the embedded store answers in microseconds: run it inline, not in threads
        threaded = not store_url.startswith("sqlite:")
        keystone_url = raw.get("keystone_url")
        keystone = KeystoneTokens(str(keystone_url)) if keystone_url else None
        app = create_app(
            Services(store), identity, noauth=args.noauth, threaded=threaded, keystone=keystone
        )
        host, port = args.listen
        logging.basicConfig(
            level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        store.close()
    return 0


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "api", help="serve the Neutron-compatible API and the built-in identity"
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 9696),
        metavar="HOST:PORT",
        help="address to serve on (default 127.0.0.1:9696)",
    )
    parser.add_argument("--config", help="TOML file: users, projects, roles, admin_token, store")
    parser.add_argument("--admin-token", help="a static token that acts as admin")
    parser.add_argument(
        "--noauth",
        action="store_true",
        help="no authentication: every request is admin (development only)",
    )
    parser.set_defaults(run=_run)
