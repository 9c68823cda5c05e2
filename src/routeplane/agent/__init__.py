"""The host agent: a level-triggered reconciler from endpoint records to the kernel."""
