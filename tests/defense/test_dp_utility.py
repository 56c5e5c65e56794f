"""DP selection's utility stays in [0, 1], so its sensitivity of 1 and its eps are honest."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defense import DEFENSES
from sim.plugins import Context
from sim.profiles import load_profile
from sim.zoo import Zoo

ZOO = Zoo(load_profile("mnist5k-cpu"), 8)  # front batch-1 latencies 0.011 .. 2.3 ms


def make(spec: dict[str, Any]) -> Any:
    params = DEFENSES.params_class(spec["type"]).model_validate(spec)
    return DEFENSES.build(params, Context(zoo=ZOO, generator=np.random.default_rng(0)))


def raw_utilities(d: Any, acc_req: float, lat_req_ms: float) -> np.ndarray:
    """The utility as the formula reads without the clip (what the selection used to draw by)."""
    u: np.ndarray = ((1 - np.maximum(acc_req - d.acc, 0) / 100)
                     + (1 - np.maximum(d.lat - lat_req_ms, 0) / d.p.latency_scale_ms)) / 2
    return u


def em_probabilities(u: np.ndarray, eps: float) -> np.ndarray:
    w = np.exp(eps * (u - u.max()) / 2)
    out: np.ndarray = w / w.sum()
    return out


def test_utility_is_clipped_to_the_unit_interval() -> None:
    """A latency excess of ~23 scales (the slowest front model, 2.3 ms, against a 0.01 ms
    target, with a 0.1 ms scale): the unclipped utility goes far below 0."""
    eps = 2.0
    d = make({"type": "exponential", "eps": eps, "latency_scale_ms": 0.1})
    acc, lat = 97.9, 0.01
    raw = raw_utilities(d, acc, lat)
    assert raw.min() < -5 and raw.max() - raw.min() > 1, "the case the clip is for"
    u = d.utilities(acc, lat)
    assert u.min() >= 0.0 and u.max() <= 1.0
    assert u.max() - u.min() <= 1.0
    # terms clipped one by one: the slowest model keeps its full accuracy half-point
    slowest = int(np.argmax(d.lat))
    assert u[slowest] == pytest.approx(0.5)
    # the exponential mechanism's odds between any two models stay within exp(eps / 2)...
    p = d.probabilities(acc, lat)
    assert p.max() / p.min() <= math.exp(eps / 2) * (1 + 1e-9)
    np.testing.assert_allclose(p, em_probabilities(u, eps))
    # ...which the unclipped utility broke (its range exceeded the sensitivity of 1)
    old = em_probabilities(raw, eps)
    assert old.max() / old.min() > math.exp(eps / 2) * 10


def test_neighbouring_specs_change_no_probability_beyond_exp_eps() -> None:
    """The eps-DP guarantee itself: two specs, any model, probability ratio <= exp(eps).
    The unclipped utility violated it for a loose and a very tight latency target."""
    eps = 1.0
    d = make({"type": "exponential", "eps": eps, "latency_scale_ms": 0.1})
    loose, tight = (97.9, 10.0), (97.9, 0.0)
    p, q = d.probabilities(*loose), d.probabilities(*tight)
    assert max((p / q).max(), (q / p).max()) <= math.exp(eps) * (1 + 1e-9)
    old_p = em_probabilities(raw_utilities(d, *loose), eps)
    old_q = em_probabilities(raw_utilities(d, *tight), eps)
    assert (old_p / old_q).max() > math.exp(eps) * 10


specs = st.tuples(st.floats(0, 130), st.floats(0, 5))


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["exponential", "permute_and_flip"]),
       eps=st.sampled_from([0.5, 2.0, 10.0]), scale=st.sampled_from([0.01, 0.5, 100.0]),
       a=specs, b=specs)
def test_utilities_in_unit_interval_and_eps_dp(kind: str, eps: float, scale: float,
                                               a: tuple[float, float],
                                               b: tuple[float, float]) -> None:
    d = make({"type": kind, "eps": eps, "latency_scale_ms": scale})
    for spec in (a, b):
        u = d.utilities(*spec)
        assert u.min() >= 0.0 and u.max() <= 1.0
    p, q = d.probabilities(*a), d.probabilities(*b)
    bound = math.exp(eps) * (1 + 1e-9)
    assert (p <= bound * q).all() and (q <= bound * p).all()
    if kind == "exponential":
        assert p.max() <= math.exp(eps / 2) * (1 + 1e-9) * p.min()
