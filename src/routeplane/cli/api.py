"""``routeplane api``: serve the Neutron-compatible API (and identity) over HTTP.

The composition root of the api: it opens the store, builds the services and the
identity from the config file (``/etc/routeplane/api.toml``: the command's options and
the identity's users and projects), and runs the ASGI app under uvicorn.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import TYPE_CHECKING, Any

from routeplane.cli import daemon
from routeplane.cli.config import ConfigError
from routeplane.cli.store import open_creating
from routeplane.model.errors import RouteplaneError
from routeplane.store import Store

if TYPE_CHECKING:
    from routeplane.services.security.identity import IdentityConfig

log = logging.getLogger(__name__)


# keys of api.toml beyond the command's options: the built-in identity's users and projects
IDENTITY_KEYS: dict[str, type | tuple[type, ...]] = {
    "users": list,
    "projects": list,
    "admin_project": str,
    "token_ttl": int,
    "token_secret": str,
    "region": str,
}
# and the subnet pools it creates at start: [{prefixes = [...], default_prefixlen = n}]
API_KEYS: dict[str, type | tuple[type, ...]] = {
    **IDENTITY_KEYS,
    "default_subnet_pools": list,
    "keystone_authtoken": dict,  # keystonemiddleware's options: Keystone's tokens
}
# keys an older api read, and what replaced them: a file still naming one is refused
RETIRED_KEYS = {
    "keystone_url": "no longer read: Keystone's tokens are validated by keystonemiddleware,"
    " configured by a [keystone_authtoken] table (www_authenticate_uri, auth_url,"
    ' auth_type = "password", username, password, project_name, user_domain_name,'
    " project_domain_name: the service user's credentials)",
}


def identity_config(args: argparse.Namespace) -> IdentityConfig:
    """The identity's settings from the config file (and ``--admin-token``); a user or
    project without its required fields is a ``ConfigError`` naming the key."""
    from routeplane.services.security.identity import IdentityConfig  # noqa: PLC0415

    raw: dict[str, Any] = {k: v for k, v in args.config_values.items() if k in IDENTITY_KEYS}
    raw["admin_token"] = args.admin_token
    try:
        return IdentityConfig.from_dict(raw)
    except KeyError as exc:
        key = "users" if raw.get("users") else "projects"
        raise ConfigError(args.config or "", key, f"an entry lacks {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(args.config or "", "users", str(exc)) from exc


def _migrate_records(store: Store) -> None:
    """Upgrade what an older routeplane wrote (``routeplane store migrate``): endpoint
    records rewritten from their ports, then the security-group member index the agents
    follow. Beside serving: requests need not wait for it, and several api processes doing
    it at once only cost each other retries (:mod:`~routeplane.services.core.record_migration`,
    :mod:`~routeplane.services.core.member_index`)."""
    from routeplane.services.core import member_index, record_migration  # noqa: PLC0415
    from routeplane.services.repo import Repo  # noqa: PLC0415

    try:
        done = record_migration.migrate(Repo(store))
        index = member_index.migrate(store)
    except RouteplaneError:  # the api serves on; the next start, or store migrate, tries again
        log.exception("migration of older records failed")
        return
    if done.older:
        log.warning(
            "endpoint records of an older version: %d found, %d rewritten",
            done.older,
            done.rewritten,
        )
    if index.written or index.deleted:
        log.warning(
            "security-group member index: %d entries written, %d stale deleted",
            index.written,
            index.deleted,
        )


def _run(args: argparse.Namespace) -> int:
    # here, not at the top: every ``routeplane`` command builds this module's parser, and
    # the web stack alone takes a third of a second to import (an agent's start-up)
    import uvicorn  # noqa: PLC0415

    from routeplane.api.app import create_app  # noqa: PLC0415
    from routeplane.api.metrics import ApiMetrics  # noqa: PLC0415
    from routeplane.cli import observe  # noqa: PLC0415
    from routeplane.services.registry import Services  # noqa: PLC0415
    from routeplane.services.security.identity import Identity, shared_secret  # noqa: PLC0415

    config = identity_config(args)
    store_url = args.store
    store = open_creating(store_url)
    listener = None
    try:
        identity = Identity(config, shared_secret(store))
        keystone = None
        authtoken = args.config_values.get("keystone_authtoken")
        if authtoken is not None:  # Keystone's tokens instead of the built-in ones
            from routeplane.api.keystone import KeystoneAuth  # noqa: PLC0415

            keystone = KeystoneAuth(authtoken)
        # the embedded store answers in microseconds: run it inline, not in threads
        threaded = not store_url.startswith("sqlite:")
        services = Services(store)
        for pool in args.config_values.get("default_subnet_pools", []):
            services.subnetpools.ensure_default(pool["prefixes"], pool.get("default_prefixlen"))
        metrics = None
        if args.metrics_listen is not None:
            registry = observe.registry()
            metrics = ApiMetrics(registry, services.repo)
            listener = observe.serve(
                args.metrics_listen, registry, lambda: observe.store_ready(store)
            )
        app = create_app(
            services,
            identity,
            noauth=args.noauth,
            threaded=threaded,
            metrics=metrics,
            keystone=keystone,
            admin_token_beside_keystone=args.admin_token_beside_keystone,
        )
        host, port = args.listen
        logging.basicConfig(
            level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        threading.Thread(
            target=_migrate_records, args=(store,), name="record-migration", daemon=True
        ).start()
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        if listener is not None:
            listener.close()
        store.close()
    return 0


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "api", help="serve the Neutron-compatible API and the built-in identity"
    )
    parser.add_argument(
        "--listen",
        type=daemon.address,
        default=("127.0.0.1", 9696),
        metavar="HOST:PORT",
        help="address to serve on (default 127.0.0.1:9696)",
    )
    daemon.add_options(
        parser,
        "api",
        "; also users, projects and their roles, default_subnet_pools; a"
        " [keystone_authtoken] table (keystonemiddleware's options) takes Keystone's tokens"
        " instead of the built-in identity's",
    )
    parser.add_argument("--admin-token", help="a static token that acts as admin")
    parser.add_argument(
        "--admin-token-beside-keystone",
        action="store_true",
        help="with [keystone_authtoken], still accept the static admin token (checked"
        " before Keystone is asked; a lab's or a bootstrap's tools); otherwise only"
        " Keystone's tokens are",
    )
    parser.add_argument(
        "--noauth",
        action="store_true",
        help="no authentication: every request is admin (development only)",
    )
    parser.set_defaults(run=_run, config_extra=API_KEYS, config_retired=RETIRED_KEYS)
