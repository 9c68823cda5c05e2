"""libnftables in this process, acting on one network namespace.

Running ``nft`` costs a ``fork``/``exec`` and the tool's start-up, about 4 ms, on every
change; the library that the tool is a front end of (``libnftables.so.1``, Debian's
``libnftables1``, installed with ``nftables``) takes the same script text in-process,
about 0.1 ms for one set element. Same parser, same transaction: one script is applied
entirely or not at all.

A netlink socket belongs for its whole life to the network namespace it was opened in,
and the library opens its socket when a context is created (and may open it again later
to recover from a lost reply). So every call — creating the context, running commands,
freeing it — happens on the one thread of a ``namespace.Namespace`` that has entered the
namespace; without a namespace name, inline in the caller's own. Calls are serialised: a
context is not safe to share between threads.

What this module must not do: load anything but ``libnftables.so.1``, or use a context
from a thread outside its namespace.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from routeplane.dataplane.linux.namespace import Namespace
from routeplane.model.errors import DataplaneError

LIBRARY = "libnftables.so.1"
BIG = 1 << 16  # a script this long (a whole table) takes libnftables tens of MB to parse
_lock = threading.Lock()
_library: ctypes.CDLL | None = None


def _trim() -> None:
    """Hand freed heap back to the system. Parsing a whole table takes libnftables about
    30 times the script's size in memory (``nft.NftTable`` sends whole tables to the
    ``nft`` command where there is one); glibc keeps what was freed for reuse, so without
    this the agent would carry that peak for the rest of its life."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def _load() -> ctypes.CDLL:
    """The library with the prototypes used here (``OSError`` when it is not there)."""
    global _library  # one handle per process, as the dynamic loader keeps one
    with _lock:
        if _library is None:
            lib = ctypes.CDLL(LIBRARY, use_errno=True)
            pointer, text = ctypes.c_void_p, ctypes.c_char_p
            for name, result, args in (
                ("nft_ctx_new", pointer, [ctypes.c_uint32]),
                ("nft_ctx_free", None, [pointer]),
                ("nft_ctx_buffer_output", ctypes.c_int, [pointer]),
                ("nft_ctx_buffer_error", ctypes.c_int, [pointer]),
                ("nft_ctx_get_output_buffer", text, [pointer]),
                ("nft_ctx_get_error_buffer", text, [pointer]),
                ("nft_run_cmd_from_buffer", ctypes.c_int, [pointer, text]),
            ):
                function: Any = getattr(lib, name)
                function.restype = result
                function.argtypes = args
            _library = lib
        return _library


def available() -> bool:
    try:
        _load()
    except OSError:
        return False
    return True


class LibNft:
    """An nftables context in network namespace ``netns`` (``None``: the caller's)."""

    def __init__(self, netns: str | None) -> None:
        try:
            self._lib: Any = _load()
        except OSError as exc:
            raise DataplaneError(f"{LIBRARY}: {exc}") from exc
        self.where = netns or "own namespace"
        self._namespace = Namespace(netns)
        self._lock = threading.Lock()
        self._context: int | None = self._namespace.run(self._new)

    def _new(self) -> int:
        context = self._lib.nft_ctx_new(0)
        if not context:
            raise DataplaneError(f"nft_ctx_new failed in {self.where}")
        if self._lib.nft_ctx_buffer_output(context) or self._lib.nft_ctx_buffer_error(context):
            self._lib.nft_ctx_free(context)
            raise DataplaneError(f"nftables output buffers failed in {self.where}")
        return int(context)

    def run(self, commands: str) -> tuple[bool, str, str]:
        """Run ``commands`` (``nft -f`` syntax) as one transaction: whether it succeeded,
        what it printed and its error messages."""
        data = commands.encode()

        def call() -> tuple[bool, str, str]:
            if self._context is None:
                raise DataplaneError(f"nftables context in {self.where} is closed")
            failed = self._lib.nft_run_cmd_from_buffer(self._context, data)
            out = self._lib.nft_ctx_get_output_buffer(self._context) or b""
            err = self._lib.nft_ctx_get_error_buffer(self._context) or b""
            return failed == 0, out.decode(errors="replace"), err.decode(errors="replace")

        with self._lock:
            result = self._namespace.run(call)
        if len(data) >= BIG:
            _trim()
        return result

    def close(self) -> None:
        with self._lock:
            context, self._context = self._context, None
            if context is not None:
                self._namespace.run(lambda: self._lib.nft_ctx_free(context))
            self._namespace.close()


__all__ = ["LIBRARY", "LibNft", "available"]
