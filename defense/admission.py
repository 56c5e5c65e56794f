"""``rate_limit``: per-client admission by a token bucket on the serving clock.

Each client (``req.tenant``) holds a bucket of ``burst`` tokens refilled at ``rate_rps``; a
request takes one token per input it carries, and is rejected when the bucket cannot pay
(``action: reject``: shed, it counts against goodput) or admitted and flagged (``action:
flag``: later roles may treat it apart). A request of more inputs than ``burst`` passes once
the bucket is full and leaves it in debt, so no request is refused forever and the long-run
rate still holds. A serving operator's first answer to a client that
floods it with queries, as a model-extraction attacker does (PSML §4 counts its budget in
inputs); state is one bucket per client seen.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from defense.base import DEFENSES, Admission, Decision
from sim.plugins import Context, PluginParams
from sim.request import Request


@DEFENSES.register("rate_limit")
class RateLimit(Admission):
    """A token bucket per client; over the limit: reject or flag."""

    class Params(PluginParams):
        type: Literal["rate_limit"] = "rate_limit"
        rate_rps: Annotated[float, Field(gt=0, allow_inf_nan=False)]
        """Inputs per second each client may send in the long run."""
        burst: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 1.0
        """Bucket size: inputs a client may send at once after a quiet spell."""
        action: Literal["reject", "flag"] = "reject"

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.rate, self.burst = params.rate_rps, params.burst
        self.over = Decision.REJECT if params.action == "reject" else Decision.FLAG
        self.buckets: dict[int, tuple[float, float]] = {}
        """Per client: (tokens, time they were counted)."""

    def admit(self, req: Request) -> Decision:
        tokens, then = self.buckets.get(req.tenant, (self.burst, req.arrival))
        tokens = min(self.burst, tokens + (req.arrival - then) * self.rate)
        if tokens >= min(req.size, self.burst):
            self.buckets[req.tenant] = (tokens - req.size, req.arrival)
            return Decision.ADMIT
        self.buckets[req.tenant] = (tokens, req.arrival)
        return self.over
