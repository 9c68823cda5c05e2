"""Neutron's faults, as values: the exception ``type`` name, HTTP code and message.

Neutron answers every error with ``{"NeutronError": {"type", "message", "detail"}}`` where
``type`` is the name of the exception class it raised and the code comes from its base
class. Clients (openstacksdk, the ``openstack`` CLI, conformance suites) read the code and
the message, some by substring, so the texts here follow Neutron's word for word. The
``api`` layer renders an :class:`ApiFault`; the service layer raises them.
"""

from __future__ import annotations

from routeplane.model.errors import RouteplaneError


class ApiFault(RouteplaneError):
    """An error the API reports to its client in Neutron's format."""

    def __init__(self, type_name: str, code: int, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.code = code
        self.message = message


def bad_request(message: str) -> ApiFault:
    """webob's HTTPBadRequest: body parsing and attribute checks."""
    return ApiFault("HTTPBadRequest", 400, message)


def invalid_input(message: str) -> ApiFault:
    return ApiFault("InvalidInput", 400, f"Invalid input for operation: {message}.")


def bad_resource_request(resource: str, message: str) -> ApiFault:
    """neutron_lib BadRequest: 'Bad <resource> request: <msg>.'"""
    return ApiFault("BadRequest", 400, f"Bad {resource} request: {message}.")


def not_found(type_name: str, message: str) -> ApiFault:
    return ApiFault(type_name, 404, message)


def http_not_found() -> ApiFault:
    """What another project's resource looks like: it does not exist."""
    return ApiFault("HTTPNotFound", 404, "The resource could not be found.")


def conflict(type_name: str, message: str) -> ApiFault:
    return ApiFault(type_name, 409, message)


def forbidden(action: str) -> ApiFault:
    return ApiFault("PolicyNotAuthorized", 403, f"rule:{action} is disallowed by policy")


def precondition_failed(expected: int, current: int) -> ApiFault:
    return ApiFault(
        "RevisionNumberConstraintFailed",
        412,
        f"Constrained to {expected}, but current revision is {current}",
    )


__all__ = [
    "ApiFault",
    "bad_request",
    "bad_resource_request",
    "conflict",
    "forbidden",
    "http_not_found",
    "invalid_input",
    "not_found",
    "precondition_failed",
]
