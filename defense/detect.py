"""``detect``: a per-client test for threshold bracketing on the spec stream (issue 15).

The fingerprinting attacker (PSML §4) finds each model's accuracy threshold by bisection: every
probe asks for the midpoint of the narrowest interval its earlier probes left open. A benign
client asks for one spec, a few classes of spec, or specs drawn from a continuous range; none of
these lands on the midpoint of a gap between its own earlier specs more often than chance.

For each request of a client, the detector takes the distinct accuracy targets of the client's
last ``window`` requests, finds the gap the new target falls strictly inside, and counts a *hit*
when one end of that gap is the client's previous target (bisection halves the interval its last
probe left open), the target lies within the central ``band`` share of the gap, and the client
never asked for that value before (among the last ``memory`` distinct values it asked for); the
same for the latency target. A request that repeats the client's previous targets is skipped:
asking again (as an attacker that identifies each spec several times does) adds nothing to the
window. Bisection asks for a new value at every step. A client whose targets are independent
draws from any distribution with a density hits with probability at most about ``band`` per
dimension (less: the gap must also end at its previous target), so the threshold is set on a
binomial with ``p0 = 1 - (1 - band)**2``, a conservative null; a client on a grid of targets
(one spec, a few classes, whole numbers) runs out of new values and stops hitting. The client is
flagged at the first request where its window holds at least ``threshold`` hits, the smallest
count whose binomial tail is at most ``alpha`` (defaults: 11 hits of 20). PRADA (Juuti et al.,
EuroS&P'19) likewise tests each client's query stream against what benign streams look like,
there on distances between inputs. A flag is permanent: every later request of the client is
flagged (or rejected, with ``action: reject``), so a response (:mod:`defense.flagged`) covers
the extraction that follows the fingerprinting.

State per client: its last ``window`` targets and hits and ``memory`` values per target
(bounded); one such state per client identity seen (the live server's identities are its
authentication's). What it does not see: inputs (no input-reuse test; benign requests in the
simulator carry none), and traffic spread over several identities (sybils, measured in
docs/results/defenses.md).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict, deque
from typing import Annotated, Literal

from pydantic import Field, model_validator
from scipy.stats import binom

from defense.base import DEFENSES, Admission, Decision
from sim.plugins import Context, PluginParams
from sim.request import Request


def midpoint_hit(x: float, earlier: list[float], band: float, last: float) -> bool:
    """Whether ``x`` lies strictly inside a gap of the sorted distinct values ``earlier`` that
    ends at ``last`` (the client's previous target: bisection halves the interval its last
    probe left) and within the central ``band`` share of it (``|x - mid| <= band / 2 * gap``)."""
    i = bisect_left(earlier, x)
    if i == 0 or i == len(earlier) or earlier[i] == x:
        return False
    lo, hi = earlier[i - 1], earlier[i]
    return last in (lo, hi) and abs(x - (lo + hi) / 2) <= band / 2 * (hi - lo)


def hit_threshold(window: int, band: float, alpha: float) -> int:
    """The smallest hit count whose probability in ``window`` benign requests is <= ``alpha``
    (binomial, ``p0 = 1 - (1 - band)**2``: a hit on either target)."""
    p0 = 1 - (1 - band) ** 2
    for c in range(1, window + 1):
        if binom.sf(c - 1, window, p0) <= alpha:
            return c
    raise ValueError(f"no hit count in a window of {window} reaches alpha {alpha:g} "
                     f"(band {band:g}): lengthen the window or raise alpha")


class Asked:
    """The last ``size`` distinct values a client asked for in one target (least recently
    asked dropped first)."""

    __slots__ = ("size", "values")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: OrderedDict[float, None] = OrderedDict()

    def first_time(self, x: float) -> bool:
        """Whether ``x`` is new to the client (then remembered); refreshes it otherwise."""
        if x in self.values:
            self.values.move_to_end(x)
            return False
        self.values[x] = None
        if len(self.values) > self.size:
            self.values.popitem(last=False)
        return True


class ClientTrace:
    """One client's last ``window`` targets and hits, the values it asked for, and when it
    was flagged."""

    __slots__ = ("acc", "asked_acc", "asked_lat", "flagged_at", "hits", "lat", "seen")

    def __init__(self, window: int, memory: int) -> None:
        self.acc: deque[float] = deque(maxlen=window)
        self.lat: deque[float] = deque(maxlen=window)
        self.hits: deque[bool] = deque(maxlen=window)
        self.asked_acc, self.asked_lat = Asked(memory), Asked(memory)
        self.seen = 0
        """Requests of the client so far."""
        self.flagged_at = -1
        """The client's request number (1-based) that raised the flag; -1 while unflagged."""


@DEFENSES.register("detect")
class BracketingDetector(Admission):
    """Flags (or rejects) every request of a client from the one whose window shows
    threshold bracketing onwards."""

    class Params(PluginParams):
        type: Literal["detect"] = "detect"
        window: Annotated[int, Field(ge=4, le=10_000)] = 20
        """Requests of the client the test looks back over."""
        band: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.02
        """Central share of a gap that counts as its midpoint (a benign continuous target
        hits with about this probability)."""
        alpha: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 1e-9
        """False-alarm probability per request of a client whose targets are independent
        continuous draws: a client of ``n`` requests is flagged with probability at most
        ``n * alpha`` (one test per request, a union bound)."""
        memory: Annotated[int, Field(ge=1, le=1_000_000)] = 1024
        """Distinct values per target a client is remembered to have asked for: only a
        value it never asked for (within this memory) can hit."""
        action: Literal["flag", "reject"] = "flag"

        @model_validator(mode="after")
        def _reachable(self) -> BracketingDetector.Params:
            hit_threshold(self.window, self.band, self.alpha)  # a ValueError names why
            return self

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.window, self.band, self.memory = params.window, params.band, params.memory
        self.threshold = hit_threshold(params.window, params.band, params.alpha)
        self.on_flag = Decision.REJECT if params.action == "reject" else Decision.FLAG
        self.clients: dict[int, ClientTrace] = {}

    def admit(self, req: Request) -> Decision:
        trace = self.clients.get(req.tenant)
        if trace is None:
            trace = self.clients[req.tenant] = ClientTrace(self.window, self.memory)
        trace.seen += 1
        if trace.flagged_at >= 0:
            return self.on_flag
        if trace.acc and trace.acc[-1] == req.acc_req and trace.lat[-1] == req.lat_req_ms:
            return Decision.ADMIT     # the same targets again: nothing new to test
        new_acc = trace.asked_acc.first_time(req.acc_req)
        new_lat = trace.asked_lat.first_time(req.lat_req_ms)
        hit = bool(trace.acc) and (
            (new_acc and midpoint_hit(req.acc_req, sorted(set(trace.acc)), self.band,
                                      trace.acc[-1]))
            or (new_lat and midpoint_hit(req.lat_req_ms, sorted(set(trace.lat)), self.band,
                                         trace.lat[-1])))
        trace.acc.append(req.acc_req)
        trace.lat.append(req.lat_req_ms)
        trace.hits.append(hit)
        if hit and sum(trace.hits) >= self.threshold:
            trace.flagged_at = trace.seen
            return self.on_flag
        return Decision.ADMIT
