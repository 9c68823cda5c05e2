"""Kernel modules for the guest image: which files, in which order, without ``depmod``.

The guest's kernel comes from a Debian package extracted into a cache directory, not
installed, so its ``modules.dep`` (written by ``depmod`` at install time) does not exist
and the host need not have kmod. Every module names the modules it needs in its own
``.modinfo`` ELF section (``depends=virtio,virtio_ring``), which is all a load order
needs: :func:`modinfo` reads that section, :func:`load_order` puts each wanted module
after what it depends on. A module built into the kernel (``modules.builtin``) is simply
not loaded.

Modules shipped compressed (``.ko.xz``, as later Debian kernels do) are handled by the
image builder, which stores them plain for busybox's ``insmod``.
"""

from __future__ import annotations

import lzma
import struct
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

SUFFIXES = (".ko", ".ko.xz")


def module_name(path: Path | str) -> str:
    """``virtio_pci`` for ``…/virtio-pci.ko.xz`` (the kernel treats - and _ alike)."""
    name = Path(path).name
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name.replace("-", "_")


def read_module(path: Path) -> bytes:
    """A module file's ELF image, decompressed when it was shipped as ``.ko.xz``."""
    raw = path.read_bytes()
    return lzma.decompress(raw) if path.name.endswith(".xz") else raw


def modinfo(elf: bytes) -> dict[str, str]:
    """The ``key=value`` strings of an ELF64 module's ``.modinfo`` section (the last value
    of a repeated key wins; ``depends`` is never repeated)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ValueError("not an ELF64 kernel module")
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(index: int) -> tuple[int, int, int]:  # name offset, file offset, size
        base = shoff + index * shentsize
        (name,) = struct.unpack_from("<I", elf, base)
        offset, size = struct.unpack_from("<QQ", elf, base + 0x18)
        return name, offset, size

    _, strtab, _ = section(shstrndx)
    for index in range(shnum):
        name, offset, size = section(index)
        end = elf.index(b"\0", strtab + name)
        if elf[strtab + name : end] == b".modinfo":
            fields = elf[offset : offset + size].split(b"\0")
            pairs = (f.decode(errors="replace").partition("=") for f in fields if b"=" in f)
            return {key: value for key, _, value in pairs}
    return {}


def index(modules_dir: Path) -> dict[str, Path]:
    """Every module under ``lib/modules/<release>/kernel``, by name."""
    return {
        module_name(path): path
        for path in sorted(modules_dir.rglob("*"))
        if path.name.endswith(SUFFIXES)
    }


def builtin(modules_dir: Path) -> set[str]:
    """Names of the modules compiled into the kernel (``modules.builtin``)."""
    listing = modules_dir / "modules.builtin"
    if not listing.exists():
        return set()
    return {module_name(line) for line in listing.read_text().split() if line}


def load_order(
    wanted: Iterable[str], depends: Callable[[str], list[str] | None], built_in: set[str]
) -> list[str]:
    """``wanted`` and everything they depend on, each after its dependencies; built-in
    modules left out. ``depends(name)`` is None for a module the kernel does not have,
    an error unless it is built in."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in seen or name in built_in:
            return
        if name in trail:
            raise ValueError(f"module dependency cycle: {' -> '.join((*trail, name))}")
        needs = depends(name)
        if needs is None:
            raise ValueError(f"no kernel module {name!r} in the guest kernel")
        for needed in needs:
            visit(needed, (*trail, name))
        seen.add(name)
        order.append(name)

    for name in wanted:
        visit(module_name(name), ())
    return order


def dependencies(paths: Mapping[str, Path]) -> Callable[[str], list[str] | None]:
    """``depends`` for :func:`load_order`: a module's ``depends`` list, read from its own
    ``.modinfo`` when asked (only the few modules the image needs are ever read)."""

    def depends(name: str) -> list[str] | None:
        path = paths.get(name)
        if path is None:
            return None
        listed = modinfo(read_module(path)).get("depends", "")
        return [module_name(dep) for dep in listed.split(",") if dep]

    return depends


__all__ = [
    "builtin",
    "dependencies",
    "index",
    "load_order",
    "modinfo",
    "module_name",
    "read_module",
]
