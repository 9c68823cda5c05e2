"""``routeplane api``: serve the Neutron-compatible API (and identity) over HTTP.

The composition root of the api: it opens the store, builds the services and the
identity from the config file, and runs the ASGI app under uvicorn.
"""

from __future__ import annotations

import argparse
import logging
import threading
import tomllib
from pathlib import Path
from typing import Any

from routeplane.cli.store import open_creating
from routeplane.model.errors import InvalidRequest, RouteplaneError
from routeplane.store import Store

log = logging.getLogger(__name__)


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


def _migrate_records(store: Store) -> None:
    """Rewrite endpoint records an older routeplane wrote (``routeplane store migrate``),
    beside serving: requests need not wait for it, and several api processes doing it at
    once only cost each other retries (:mod:`~routeplane.services.core.record_migration`)."""
    from routeplane.services.core.record_migration import migrate  # noqa: PLC0415
    from routeplane.services.repo import Repo  # noqa: PLC0415

    try:
        done = migrate(Repo(store))
    except RouteplaneError:  # the api serves on; the next start, or store migrate, tries again
        log.exception("endpoint record migration failed")
        return
    if done.older:
        log.warning(
            "endpoint records of an older version: %d found, %d rewritten",
            done.older,
            done.rewritten,
        )


def _run(args: argparse.Namespace) -> int:
    # here, not at the top: every ``routeplane`` command builds this module's parser, and
    # the web stack alone takes a third of a second to import (an agent's start-up)
    import uvicorn  # noqa: PLC0415

    from routeplane.api.app import create_app  # noqa: PLC0415
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
        services = Services(store)
        for pool in raw.get("default_subnet_pools", []):  # [{prefixes, default_prefixlen}]
            services.subnetpools.ensure_default(pool["prefixes"], pool.get("default_prefixlen"))
        app = create_app(services, identity, noauth=args.noauth, threaded=threaded)
        host, port = args.listen
        logging.basicConfig(
            level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        threading.Thread(
            target=_migrate_records, args=(store,), name="record-migration", daemon=True
        ).start()
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
    parser.add_argument(
        "--config",
        help="TOML file: users, projects, roles, admin_token, store, default_subnet_pools",
    )
    parser.add_argument("--admin-token", help="a static token that acts as admin")
    parser.add_argument(
        "--noauth",
        action="store_true",
        help="no authentication: every request is admin (development only)",
    )
    parser.set_defaults(run=_run)
