"""BGP with BIRD 2: the host's configuration as a pure function (``render``) and the
port that writes it and makes BIRD take it (``bird``)."""
