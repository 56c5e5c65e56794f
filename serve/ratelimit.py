"""A per-client token-bucket rate limit for the live API (``api.rate_limit_rps``).

Each client (the tenant of its API key when auth is on, else its address: never a name the
client chooses, or rotating it would buy more requests) has a bucket of
``burst`` tokens refilled at ``rate`` per second; a request takes one token or is refused with
429 and the seconds to wait. Buckets of clients not seen for a while are forgotten (at most
``max_clients`` are kept, least recently used first out), so memory stays bounded.
"""

from __future__ import annotations

from collections import OrderedDict


class RateLimiter:
    """Token buckets keyed by client."""

    def __init__(self, rate: float, burst: float, max_clients: int = 10000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def admit(self, client: str, now: float) -> float:
        """0.0 if ``client`` may send now (a token is taken), else the seconds until it may."""
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait
