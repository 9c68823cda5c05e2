"""Composition roots: the ``routeplane`` command and its subcommands."""
