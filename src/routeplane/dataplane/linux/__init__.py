"""The Linux dataplane driver: the real ``Kernel`` port, for one network namespace.

It speaks rtnetlink through a small codec of its own (``rtnl``), which nothing outside
this package may import (an import-linter contract); why not pyroute2, with the
measurements, is in ``docs/design/netlink.md``. nftables goes through libnftables
(``libnft``), sysctls through ``/proc/sys`` from a thread inside the namespace.
"""

from routeplane.dataplane.linux.kernel import LinuxKernel
from routeplane.dataplane.linux.nft import NftTable

__all__ = ["LinuxKernel", "NftTable"]
