"""Nova's side: a compute driver for nova-compute that boots lab guests on routeplane taps
(``driver``, which imports Nova) over a Nova-free core (``spawning``)."""
