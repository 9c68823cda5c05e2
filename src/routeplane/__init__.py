"""routeplane: a routed (pure layer-3) network for VM clouds, in the model of Calico for OpenStack.

The package is layered; imports point downwards only (enforced by import-linter): ``cli``
-> ``api | agent | controller | lab`` -> ``services`` -> ``ipam | store | dataplane |
bgp`` -> ``model`` (``docs/architecture.md``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
