"""Address arithmetic for subnets: pools, reserved addresses, choosing a free address.

Pure functions; the caller persists a choice with a create-if-absent claim in the store.
"""
