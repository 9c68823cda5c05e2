"""routeplane's own exception tree: callers catch these, never a backend library's.

Adapters translate foreign exceptions at their boundary (``raise ... from exc``) so that
the layers above can make decisions (retry, re-snapshot, answer 409) without knowing which
backend is in use::

    RouteplaneError
    └── StoreError
        ├── Unavailable        the store could not be reached or did not answer in time;
        │                      nothing is known to have changed: retry with backoff
        ├── InvalidKey         a key or prefix is malformed; nothing was written
        ├── InvalidValue       a value is not JSON or is too large; nothing was written
        ├── InvalidRequest     a transaction is malformed (too many operations, ...)
        ├── Compacted          a watch or read asked for history that was compacted away:
        │                      take a fresh snapshot and watch from its revision + 1
        └── LeaseNotFound      the lease expired or was revoked; its keys are gone
    └── DataplaneError         the kernel could not be read at all (its namespace is gone,
                               the netlink socket failed); a failed *change* is never
                               raised: ``Kernel.apply`` reports it in its ``Outcome``
    └── BgpError               BIRD refused a configuration or could not be started; the
                               configuration it runs stays as it was
"""


class RouteplaneError(Exception):
    """Base of every error routeplane raises on purpose."""


class StoreError(RouteplaneError):
    """Something went wrong talking to the revisioned store."""


class Unavailable(StoreError):
    """The store could not be reached, or did not answer in time."""


class InvalidKey(StoreError, ValueError):
    """A key or key prefix does not follow the store's key rules."""


class InvalidValue(StoreError, ValueError):
    """A value is not a JSON document, or is larger than the store accepts."""


class InvalidRequest(StoreError, ValueError):
    """A transaction is malformed: too many operations, too large, or an unknown target."""


class Compacted(StoreError):
    """The requested revision is older than the store's compaction point."""

    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(
            f"revision {requested} has been compacted; the oldest available is {compact_revision}"
        )
        self.requested = requested
        self.compact_revision = compact_revision


class LeaseNotFound(StoreError):
    """The lease does not exist: it expired or was revoked."""

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"lease {lease_id:x} not found (expired or revoked)")
        self.lease_id = lease_id


class DataplaneError(RouteplaneError):
    """The kernel (or its network namespace) could not be read or reached."""


class BgpError(RouteplaneError):
    """BIRD refused a configuration, or could not be started or reached."""


__all__ = [
    "BgpError",
    "Compacted",
    "DataplaneError",
    "InvalidKey",
    "InvalidRequest",
    "InvalidValue",
    "LeaseNotFound",
    "RouteplaneError",
    "StoreError",
    "Unavailable",
]
