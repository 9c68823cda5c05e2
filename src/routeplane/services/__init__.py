"""Use cases behind the Neutron API: validate, allocate, and commit in one store transaction.

Nothing here knows HTTP; the ``api`` layer translates requests and faults.
"""
