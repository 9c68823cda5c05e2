"""From one version of the table to the next with only what changed: pure functions.

Replacing the whole table costs the kernel (and libnftables) time in proportion to
everything in it, on every change. Instead an ``Update`` names only what differs — blocks
created, chains whose rules changed, set and map elements added or removed, blocks
deleted — and ``script`` writes it as one ``nft -f`` transaction (still atomic), in an
order that never leaves a reference dangling:

1. new sets and maps are declared (empty);
2. elements leave their sets and maps (before any arrive: a prefix replacing the
   addresses it covers must not overlap them, and a verdict leaves before its chain goes);
3. regular chains are created or flushed and given their rules (they use the sets);
4. elements arrive (verdicts jump to the chains of step 3);
5. base chains (``forward``, ``input``, nat) are created or rewritten;
6. chains no longer wanted are deleted, then sets and maps.

A set's type never changes under the same name (the names say what they hold); if it
did, only a full replacement would do, and ``changes`` says so with ``None``.

``delta(old, new)`` does all this for two rendered scripts (the tests use it to check
that an update leaves the kernel exactly as a full replacement does); the agent builds
its ``Update`` from what it knows changed (``agent/policy.py``), without comparing whole
tables. What this module must not do: I/O, or anything outside table ``inet routeplane``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from routeplane.dataplane.nft_render import FAMILY, TABLE, Key

_BLOCK = re.compile(r"^\t(set|map|chain) (\S+) \{\n(.*?)^\t\}\n", re.MULTILINE | re.DOTALL)
_ELEMENTS = re.compile(r"^\t\telements = \{ (.*) \}\n", re.MULTILINE)
Blocks = dict[Key, str]  # (kind, name) -> body


@dataclass
class Update:
    """What turns one version of the table into the next."""

    created: dict[Key, str] = field(default_factory=dict)  # set/map type, or chain body
    rewritten: dict[str, str] = field(default_factory=dict)  # chain name -> its new rules
    added: dict[Key, set[str]] = field(default_factory=dict)
    removed: dict[Key, set[str]] = field(default_factory=dict)
    deleted: list[Key] = field(default_factory=list)


def blocks(script: str) -> Blocks:
    """The named blocks of a rendered table (or of ``nft list table``), in their order."""
    return {(m.group(1), m.group(2)): m.group(3) for m in _BLOCK.finditer(script)}


def split(body: str) -> tuple[str, set[str]]:
    """A rendered set's or map's body as its declaration (type, flags) and its elements."""
    match = _ELEMENTS.search(body)
    if match is None:
        return body, set()
    return body[: match.start()] + body[match.end() :], set(match.group(1).split(", "))


def changes(old: Mapping[Key, str], new: Mapping[Key, str]) -> Update | None:
    """The blocks to create, rewrite and delete between two tables (chain bodies, set
    and map declarations); elements are the caller's. ``None``: a set changed its type."""
    update = Update()
    for key, head in new.items():
        before = old.get(key)
        if before is None:
            update.created[key] = head
        elif before != head:
            if key[0] != "chain":
                return None
            update.rewritten[key[1]] = head
    update.deleted = [key for key in old if key not in new]
    return update


def delta(old: Blocks, new: Blocks) -> str | None:
    """The script turning rendered table ``old`` into ``new`` (``None``: only a full
    replacement will do; an empty string: nothing to do)."""
    heads_old: dict[Key, str] = {}
    heads_new: dict[Key, str] = {}
    had: dict[Key, set[str]] = {}
    has: dict[Key, set[str]] = {}
    for source, heads, found in ((old, heads_old, had), (new, heads_new, has)):
        for key, body in source.items():
            if key[0] == "chain":
                heads[key] = body
            else:
                heads[key], found[key] = split(body)
    update = changes(heads_old, heads_new)
    if update is None:
        return None
    for key, elements in has.items():
        before = had.get(key, set()) if key in heads_old else set()
        if elements - before:
            update.added[key] = elements - before
        if before - elements:
            update.removed[key] = before - elements
    return script(update)


def _table(blocks: list[str]) -> str:
    return f"table {FAMILY} {TABLE} {{\n" + "".join(blocks) + "}\n" if blocks else ""


def _elements(verb: str, found: Mapping[Key, set[str]]) -> str:
    return "".join(
        f"{verb} element {FAMILY} {TABLE} {key[1]} {{ {', '.join(sorted(found[key]))} }}\n"
        for key in sorted(found)
        if found[key]
    )


def script(update: Update) -> str:
    """``update`` as one ``nft -f`` transaction, in the order the module docstring gives."""
    table = f"{FAMILY} {TABLE}"
    created = sorted(update.created.items())
    sets = [f"\t{k[0]} {k[1]} {{\n{h}\t}}\n" for k, h in created if k[0] != "chain"]
    chains = {k[1]: h for k, h in update.created.items() if k[0] == "chain"}
    chains.update(update.rewritten)
    regular = [name for name in sorted(chains) if "hook" not in chains[name]]
    base = [name for name in sorted(chains) if "hook" in chains[name]]
    gone = set(update.deleted)
    removed = {k: e for k, e in update.removed.items() if k not in update.created and k not in gone}
    added = {k: e for k, e in update.added.items() if k not in gone}
    text = _table(sets)
    text += _elements("delete", removed)
    for group in (regular, base):
        text += "".join(f"flush chain {table} {n}\n" for n in group if n in update.rewritten)
        text += _table([f"\tchain {n} {{\n{chains[n]}\t}}\n" for n in group])
        if group is regular:
            text += _elements("add", added)
    doomed = sorted(update.deleted, key=lambda k: (k[0] != "chain", k[1]))
    text += "".join(f"delete {kind} {table} {name}\n" for kind, name in doomed)
    return text


__all__ = ["Blocks", "Update", "blocks", "changes", "delta", "script", "split"]
