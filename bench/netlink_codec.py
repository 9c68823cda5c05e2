"""Netlink codec benchmark: routeplane's own rtnetlink codec beside pyroute2, on the same work.

Why it exists: ``docs/design/netlink.md`` argues for ``routeplane.dataplane.linux.rtnl``
instead of pyroute2 with these figures; this script makes them again. Needs root; without
it, says so and exits 0.

Each run starts a fresh process per codec inside a fresh ``rp-bench-…`` namespace (one
veth pair, up, with a TEST-NET address; nothing outside the namespace is touched, and the
namespace is deleted at the end, also on failure) and measures, for N /32 routes
(``proto 77 scope link metric 1024`` on the veth) and N permanent neighbours:

- import: the codec's import time (routeplane's: the module alone, which imports only the
  standard library; pyroute2's: ``import pyroute2``) and the resident memory after it;
- encode: building the N + N requests into bytes, sending nothing (pyroute2: its
  ``IPBatch`` request compiler, which runs ``IPRoute``'s API and encoder; ``encode_msg``:
  its ``rtmsg``/``ndmsg`` message classes alone, without the API);
- apply: programming them (routeplane: ``Rtnl.execute``, 256 requests a datagram;
  pyroute2: ``IPRoute.route``/``neigh("replace", …)``, its API for changes, one request
  and one acknowledgement at a time);
- read back: dumping our routes and the neighbours, decoded;
- peak resident memory of the process at the end.

pyroute2 is not a dependency of routeplane. Give ``--pyroute2-python`` an interpreter
that has it (e.g. a throwaway venv with ``pyroute2==0.9.7``); by default the current one
is used if it can import pyroute2, and otherwise pyroute2's column is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

COUNT = 2000
RUNS = 3
PROTOCOL, METRIC = 77, 1024
NUD_PERMANENT, RT_SCOPE_LINK, RT_TABLE_MAIN = 0x80, 253, 254
LINK, PEER = "rpb0", "rpb1"
HOST_ADDRESS = "192.0.2.1/24"  # TEST-NET-1, only ever inside the bench namespace
SRC = Path(__file__).resolve().parent.parent / "src"
RTNL = SRC / "routeplane" / "dataplane" / "linux" / "rtnl.py"
CODECS = ("rtnl", "pyroute2")
MEASURES = (
    "import_ms",
    "import_rss_mb",
    "encode_ms",
    "encode_msg_ms",
    "apply_ms",
    "read_ms",
    "peak_rss_mb",
)


def address(i: int) -> str:
    return f"10.{i // 62500 % 256}.{i // 250 % 250}.{i % 250 + 1}"


def mac(i: int) -> str:
    return f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def rss_mb() -> float:
    """The process's resident memory now (VmRSS), in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def clock(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def read_back(read: Callable[[], int], count: int) -> float:
    """Milliseconds ``read`` took to find at least the ``count`` routes and neighbours."""
    elapsed, found = clock(read)
    assert isinstance(found, int)
    assert found >= 2 * count, found
    return elapsed


# --- workers: one fresh process each, inside the bench namespace ----------------------
def load_rtnl() -> ModuleType:
    """The codec's module alone (it imports only the standard library), without the
    package around it: the rest of the Linux driver is not counted on either side."""
    spec = importlib.util.spec_from_file_location("rtnl", RTNL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rtnl"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def rtnl_worker(count: int) -> dict[str, float]:
    import_ms, module = clock(load_rtnl)
    rtnl: Any = module
    figures = {"import_ms": import_ms, "import_rss_mb": rss_mb()}
    index = socket.if_nametoindex(LINK)

    def requests() -> list[Any]:
        routes = [rtnl.route_replace(address(i), index, PROTOCOL, METRIC) for i in range(count)]
        neighbours = [rtnl.neighbour_replace(address(i), index, mac(i)) for i in range(count)]
        return routes + neighbours

    figures["encode_ms"], _ = clock(
        lambda: b"".join(r.encode(seq) for seq, r in enumerate(requests(), 1))
    )
    figures["encode_msg_ms"] = figures["encode_ms"]  # the codec has no layer above it
    netlink = rtnl.Rtnl.open()
    try:
        figures["apply_ms"], results = clock(lambda: netlink.execute(requests()))
        assert isinstance(results, list)
        refused = [r for r in results if r is not None]
        assert not refused, refused[:3]

        def read() -> int:
            routes = netlink.routes(socket.AF_INET, RT_TABLE_MAIN, PROTOCOL)
            return len(routes) + len(netlink.neighbours(socket.AF_INET))

        figures["read_ms"] = read_back(read, count)
    finally:
        netlink.close()
    return figures


def pyroute2_worker(count: int) -> dict[str, float]:
    import_ms, module = clock(lambda: importlib.import_module("pyroute2"))
    pyroute2: Any = module
    figures = {"import_ms": import_ms, "import_rss_mb": rss_mb()}
    index = socket.if_nametoindex(LINK)

    def program(api: Any) -> None:
        for i in range(count):
            api.route(
                "replace",
                dst=f"{address(i)}/32",
                oif=index,
                scope=RT_SCOPE_LINK,
                proto=PROTOCOL,
                priority=METRIC,
                table=RT_TABLE_MAIN,
            )
        for i in range(count):
            api.neigh("replace", dst=address(i), lladdr=mac(i), ifindex=index, state=NUD_PERMANENT)

    def encode() -> int:
        compiler = pyroute2.IPBatch()
        try:
            program(compiler)
            return len(compiler.batch)
        finally:
            compiler.close()

    figures["encode_ms"], _ = clock(encode)
    figures["encode_msg_ms"], _ = clock(lambda: pyroute2_messages(count, index))
    api = pyroute2.IPRoute()
    try:
        figures["apply_ms"], _ = clock(lambda: program(api))

        def read() -> int:
            routes = api.route("dump", table=RT_TABLE_MAIN, proto=PROTOCOL)
            neighbours = api.neigh("dump", family=socket.AF_INET)
            return len(list(routes)) + len(list(neighbours))

        figures["read_ms"] = read_back(read, count)
    finally:
        api.close()
    return figures


def pyroute2_messages(count: int, index: int) -> int:
    """The same requests through pyroute2's message classes directly (its codec without
    the API around it): what a batching client built on pyroute2 would pay."""
    rtmsg: Any = importlib.import_module("pyroute2.netlink.rtnl.rtmsg").rtmsg
    ndmsg: Any = importlib.import_module("pyroute2.netlink.rtnl.ndmsg").ndmsg
    flags = 0x1 | 0x4 | 0x100 | 0x400  # request, ack, replace, create
    size = 0
    for i in range(count):
        route = rtmsg()
        for key, value in (
            ("family", socket.AF_INET),
            ("dst_len", 32),
            ("table", RT_TABLE_MAIN),
            ("proto", PROTOCOL),
            ("scope", RT_SCOPE_LINK),
            ("type", 1),
        ):
            route[key] = value
        route["attrs"] = [("RTA_DST", address(i)), ("RTA_OIF", index), ("RTA_PRIORITY", METRIC)]
        neighbour = ndmsg()
        for key, value in (
            ("family", socket.AF_INET),
            ("ifindex", index),
            ("state", NUD_PERMANENT),
        ):
            neighbour[key] = value
        neighbour["attrs"] = [("NDA_DST", address(i)), ("NDA_LLADDR", mac(i))]
        for seq, (message, kind) in enumerate(((route, 24), (neighbour, 28)), 2 * i + 1):
            message["header"].update(type=kind, flags=flags, sequence_number=seq)
            message.encode()
            size += len(message.data)
    return size


def worker(codec: str, count: int) -> None:
    figures = rtnl_worker(count) if codec == "rtnl" else pyroute2_worker(count)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


# --- the driver: namespaces, processes, the table ---------------------------------------
def one_run(codec: str, python: str, count: int) -> dict[str, float]:
    from routeplane.lab import netns

    with netns.Cleanup() as cleanup:
        namespace = cleanup.namespace("bench")
        netns.ip(namespace, "link", "add", LINK, "type", "veth", "peer", "name", PEER)
        for link in (LINK, PEER):
            netns.ip(namespace, "link", "set", link, "up")
        netns.ip(namespace, "address", "add", HOST_ADDRESS, "dev", LINK)
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        command = ["ip", "netns", "exec", namespace, python, __file__, "--worker", codec]
        done = subprocess.run(
            [*command, "--count", str(count)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{codec} worker failed: {done.stderr.strip()}")
        figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
        return figures


def pyroute2_python(given: str | None) -> str | None:
    if given:
        return given
    return sys.executable if importlib.util.find_spec("pyroute2") else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=COUNT)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--pyroute2-python", help="an interpreter that can import pyroute2")
    parser.add_argument("--worker", choices=CODECS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.count)
        return 0
    if os.geteuid() != 0:
        print("netlink codec benchmark: needs root (network namespaces); skipped")
        return 0
    pythons = {"rtnl": sys.executable, "pyroute2": pyroute2_python(args.pyroute2_python)}
    n = args.count
    print(f"netlink codec benchmark: {n:,} /32 routes + {n:,} neighbours, median of {args.runs}")
    results: dict[str, list[dict[str, float]]] = {codec: [] for codec in CODECS}
    for _ in range(args.runs):
        for codec in CODECS:  # alternated, so that neither always runs on a warmer machine
            python = pythons[codec]
            if python is not None:
                results[codec].append(one_run(codec, python, n))
    print(f"  {'':<16}" + "".join(f"{codec:>12}" for codec in CODECS))
    for measure in MEASURES:
        cells = []
        for codec in CODECS:
            values = [run[measure] for run in results[codec]]
            cells.append(f"{statistics.median(values):>12.1f}" if values else f"{'skipped':>12}")
        print(f"  {measure:<16}" + "".join(cells))
    if not results["pyroute2"]:
        print("  (pyroute2 not importable here: give --pyroute2-python)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
