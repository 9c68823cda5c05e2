"""``routeplane store``: look at and change the store by hand (debugging, scripts, demos).

Values are read and printed as JSON. Nothing here bypasses the store interface: what works
here works the same on sqlite and etcd.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from routeplane.model.errors import InvalidValue
from routeplane.model.jsontypes import JSONValue
from routeplane.store import Delete, KeyValue, Store, open_store


def open_creating(url: str) -> Store:
    """``open_store``, creating the directory of an embedded store's file first (the
    default lives under /var/lib/routeplane, which a fresh machine does not have)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite://").split("?")[0]).parent.mkdir(parents=True, exist_ok=True)
    return open_store(url)


def _open(args: argparse.Namespace) -> Store:
    return open_creating(args.store)


def _show(kv: KeyValue) -> str:
    return f"{kv.key} = {json.dumps(kv.value)}  (rev {kv.mod_revision}, v{kv.version})"


def _get(args: argparse.Namespace, store: Store) -> int:
    kv = store.get(args.key)
    if kv is None:
        print(f"{args.key}: not found")
        return 1
    print(_show(kv))
    return 0


def _put(args: argparse.Namespace, store: Store) -> int:
    try:
        value: JSONValue = json.loads(args.value)
    except json.JSONDecodeError as exc:
        raise InvalidValue(f"value is not JSON: {exc}") from exc
    lease = store.grant_lease(args.ttl) if args.ttl else None
    revision = store.put(args.key, value, lease=lease)
    suffix = f", expires in {args.ttl}s unless renewed" if lease else ""
    print(f"{args.key} written at revision {revision}{suffix}")
    return 0


def _delete(args: argparse.Namespace, store: Store) -> int:
    result = store.txn([], [Delete(args.key, prefix=args.prefix)])
    print(f"deleted {result.results[0]} key(s) at revision {result.revision}")
    return 0


def _list(args: argparse.Namespace, store: Store) -> int:
    result = store.range(args.prefix)
    for kv in result.items:
        print(_show(kv))
    print(f"{len(result.items)} key(s) at revision {result.revision}")
    return 0


def _watch(args: argparse.Namespace, store: Store) -> int:
    seen = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    with store.watch(args.prefix, args.start) as watch:
        while args.count is None or seen < args.count:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            for event in watch.next_batch(timeout=remaining if remaining is not None else 1.0):
                print(f"{event.revision} {event.type.value} {event.key} {json.dumps(event.value)}")
                seen += 1
    return 0


def _compact(args: argparse.Namespace, store: Store) -> int:
    store.compact(args.revision)
    print(f"history before revision {args.revision} compacted")
    return 0


def _revision(args: argparse.Namespace, store: Store) -> int:
    print(store.revision())
    return 0


def _check(args: argparse.Namespace, store: Store) -> int:
    """Overlapping subnets and addresses held twice, in data written by any version."""
    from routeplane.services.core.store_check import check_store  # noqa: PLC0415
    from routeplane.services.repo import Repo  # noqa: PLC0415

    problems = check_store(Repo(store))
    for line in problems:
        print(line)
    print(f"{len(problems)} problem(s) found" if problems else "no problems found")
    return 1 if problems else 0


def _migrate(args: argparse.Namespace, store: Store) -> int:
    """Upgrade what an older routeplane wrote (the api does it at start too): endpoint
    records rewritten from their ports, then the security-group member index built from
    the records. Idempotent."""
    from routeplane.model.endpoint import RECORD_VERSION  # noqa: PLC0415
    from routeplane.services.core import member_index, record_migration  # noqa: PLC0415
    from routeplane.services.repo import Repo  # noqa: PLC0415

    done = record_migration.migrate(Repo(store))
    print(
        f"{done.older} endpoint record(s) older than version {RECORD_VERSION}: "
        f"{done.rewritten} rewritten"
    )
    index = member_index.migrate(store)
    print(
        f"security-group member index: {index.written} entr(y/ies) written, "
        f"{index.deleted} stale deleted"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        code: int = args.action(args, store)
    finally:
        store.close()
    return code


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "store", help="read, write and watch the store by hand"
    )
    parser.set_defaults(run=_run)
    actions = parser.add_subparsers(dest="action_name", required=True, metavar="ACTION")

    p = actions.add_parser("get", help="show one key")
    p.add_argument("key")
    p.set_defaults(action=_get)

    p = actions.add_parser("put", help="write a JSON value")
    p.add_argument("key")
    p.add_argument("value", help="a JSON document, e.g. '{\"a\": 1}' or '\"text\"'")
    p.add_argument("--ttl", type=int, help="attach a new lease of this many seconds")
    p.set_defaults(action=_put)

    p = actions.add_parser("del", help="delete a key, or every key under a prefix")
    p.add_argument("key")
    p.add_argument("--prefix", action="store_true")
    p.set_defaults(action=_delete)

    p = actions.add_parser("ls", help="list the keys under a prefix")
    p.add_argument("prefix", nargs="?", default="/")
    p.set_defaults(action=_list)

    p = actions.add_parser("watch", help="print changes under a prefix as they happen")
    p.add_argument("prefix", nargs="?", default="/")
    p.add_argument("--from", dest="start", type=int, help="replay from this revision")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    p.set_defaults(action=_watch)

    p = actions.add_parser("compact", help="forget history before a revision")
    p.add_argument("revision", type=int)
    p.set_defaults(action=_compact)

    p = actions.add_parser(
        "check", help="report overlapping subnets and addresses held twice (exit 1 if any)"
    )
    p.set_defaults(action=_check)

    p = actions.add_parser(
        "migrate",
        help="upgrade: rewrite endpoint records of an older version from their ports, then"
        " build the security-group member index (sgmembers/); the api does it at start too;"
        " idempotent",
    )
    p.set_defaults(action=_migrate)

    p = actions.add_parser("rev", help="print the current revision")
    p.set_defaults(action=_revision)
