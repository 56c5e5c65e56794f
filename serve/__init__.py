"""Live serving: the simulator's own front-end and workers behind an HTTP API (``zoosim serve``),
a load generator (``zoosim load``) and the simulator-against-reality check."""
