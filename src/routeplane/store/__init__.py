"""The revisioned store: one interface (``base``), two backends chosen by URL.

``sqlite:///path/to/store.db`` is the embedded default; ``etcd://host:port[,host:port]``
is the store for several hosts and several api replicas.
"""

from routeplane.store.base import (
    Compare,
    Delete,
    Event,
    EventType,
    Get,
    KeyValue,
    Op,
    Put,
    Range,
    RangeResult,
    Store,
    TxnResult,
    Watch,
    absent,
    exists,
    mod_revision_is,
    value_is,
)
from routeplane.store.url import DEFAULT_STORE_URL, open_store

__all__ = [
    "DEFAULT_STORE_URL",
    "Compare",
    "Delete",
    "Event",
    "EventType",
    "Get",
    "KeyValue",
    "Op",
    "Put",
    "Range",
    "RangeResult",
    "Store",
    "TxnResult",
    "Watch",
    "absent",
    "exists",
    "mod_revision_is",
    "open_store",
    "value_is",
]
