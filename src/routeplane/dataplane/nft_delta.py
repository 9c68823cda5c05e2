"""From one rendered table to the next with only what changed: a pure function.

Replacing the whole table (``delete table`` + define) costs the kernel time in proportion
to everything in it — about half a second for a thousand endpoints — on every change.
Instead, both versions are split into their named blocks (sets, maps, chains), and the
update script touches only blocks that differ, in an order that never leaves a reference
dangling, all in one ``nft -f`` transaction (so it is still atomic):

1. new sets and maps are added, changed ones flushed and refilled;
2. new chains are added, changed ones flushed and given their new rules — base chains
   (``forward``, ``input``, nat) last, so jumps to new chains find them;
3. chains no longer rendered are deleted, then sets and maps no longer rendered.

What it must not do: I/O, or anything outside table ``inet routeplane``.
"""

from __future__ import annotations

import re

from routeplane.dataplane.nft_render import FAMILY, TABLE

_BLOCK = re.compile(r"^\t(set|map|chain) (\S+) \{\n(.*?)^\t\}\n", re.MULTILINE | re.DOTALL)
Blocks = dict[tuple[str, str], str]  # (kind, name) -> body


def blocks(script: str) -> Blocks:
    """The named blocks of a rendered table, in the order they were rendered."""
    return {(m.group(1), m.group(2)): m.group(3) for m in _BLOCK.finditer(script)}


def _elements(body: str) -> str | None:
    match = re.search(r"elements = \{ (.*) \}", body)
    return None if match is None else match.group(1)


def _declaration(body: str) -> str:
    """A set's or map's body without its elements: type and flags."""
    return re.sub(r"\t*elements = \{.*\}\n", "", body)


def delta(old: Blocks, new: Blocks) -> str | None:
    """The script turning table ``old`` into ``new``; ``None`` when a set's type changed
    (then only a full replacement will do). An empty string means nothing to do."""
    table = f"{FAMILY} {TABLE}"
    lines: list[str] = []
    defined: list[str] = []
    for key, body in new.items():
        kind, name = key
        if kind == "chain" or old.get(key) == body:
            continue
        if key in old:
            if _declaration(old[key]) != _declaration(body):
                return None
            lines.append(f"flush {kind} {table} {name}")
            elements = _elements(body)
            if elements:
                lines.append(f"add element {table} {name} {{ {elements} }}")
        else:
            defined.append(f"\t{kind} {name} {{\n{body}\t}}\n")
    regular = [k for k in new if k[0] == "chain" and "hook" not in new[k]]
    base = [k for k in new if k[0] == "chain" and "hook" in new[k]]
    for key in regular + base:
        if old.get(key) == new[key]:
            continue
        if key in old:
            lines.append(f"flush chain {table} {key[1]}")
        defined.append(f"\tchain {key[1]} {{\n{new[key]}\t}}\n")
    removed_chains = [
        f"delete chain {table} {k[1]}" for k in old if k[0] == "chain" and k not in new
    ]
    removed_sets = [
        f"delete {k[0]} {table} {k[1]}" for k in old if k[0] != "chain" and k not in new
    ]
    script = "\n".join(lines) + ("\n" if lines else "")
    if defined:
        script += f"table {table} {{\n" + "".join(defined) + "}\n"
    script += "".join(f"{line}\n" for line in removed_chains + removed_sets)
    return script


__all__ = ["Blocks", "blocks", "delta"]
