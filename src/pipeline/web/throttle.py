"""A per-client rate limit (a token bucket per address), for the sign-in form.

The lockout in `People.sign_in` protects one name; this keeps one address from trying many names
(or locking many people out) quickly. Kept in memory, per process, for at most `most_clients`
addresses (the least recently seen are forgotten first), so it cannot be grown without bound.
Behind a reverse proxy every visitor shares the proxy's address: set the limit with that in mind.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class RateLimit:
    def __init__(self, per_minute: int, burst: int | None = None, most_clients: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst or per_minute)
        self.most_clients = most_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 when `client` may go ahead now (one token taken), else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
            while len(self._buckets) > self.most_clients:
                self._buckets.popitem(last=False)
        return wait
