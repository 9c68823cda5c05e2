"""The Linux dataplane driver: the real ``Kernel`` port, for one network namespace.

The only place (with the lab) allowed to import pyroute2; the hot paths use a small
rtnetlink codec of their own instead (see ``rtnl``'s docstring for the measurements).
"""

from routeplane.dataplane.linux.kernel import LinuxKernel
from routeplane.dataplane.linux.nft import NftTable

__all__ = ["LinuxKernel", "NftTable"]
