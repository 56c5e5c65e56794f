"""The host's processor sharing and its FCFS stations (sim/host.py) against queueing theory
and against hand-worked sample paths (issue 18). Simulated time only: no wall clock."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator

import numpy as np
import pytest
import simpy

from sim.host import CoreQueue, Host, RunQueues, Station


def run_station(lam: float, work: Callable[[], float], *, servers: int = 1, cores: float = 8,
                setup_s: float = 0.0, n: int = 100_000, seed: int = 1) -> np.ndarray:
    """Poisson arrivals at ``lam`` to one station; the response time of every job."""
    env = simpy.Environment()
    host = Host(env, cores)
    station = Station(host, servers, setup_s)
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / lam, n)
    works = [work() for _ in range(n)]
    resp = np.full(n, np.nan)

    def arrivals(env: simpy.Environment):  # type: ignore[no-untyped-def]
        for i in range(n):
            yield env.timeout(gaps[i])
            t0 = env.now

            def done(i: int = i, t0: float = t0) -> None:
                resp[i] = env.now - t0

            station.submit(works[i], done)

    env.process(arrivals(env))
    env.run()
    assert not np.isnan(resp).any()
    return resp


def erlang_c_response(lam: float, mu: float, k: int) -> float:
    """Mean response time of M/M/k (Erlang C)."""
    a = lam / mu
    rho = a / k
    tail = a**k / math.factorial(k) / (1 - rho)
    p_wait = tail / (sum(a**i / math.factorial(i) for i in range(k)) + tail)
    return p_wait / (k * mu - lam) + 1 / mu


def test_mm1() -> None:
    rng = np.random.default_rng(2)
    resp = run_station(0.7, lambda: float(rng.exponential(1.0)))
    assert resp.mean() == pytest.approx(1 / (1 - 0.7), rel=0.05)


def test_md1_pollaczek_khinchine() -> None:
    lam, s = 0.7, 1.0
    resp = run_station(lam, lambda: s)
    assert resp.mean() == pytest.approx(lam * s * s / (2 * (1 - lam * s)) + s, rel=0.03)


def test_mmk_erlang_c() -> None:
    rng = np.random.default_rng(3)
    resp = run_station(2.1, lambda: float(rng.exponential(1.0)), servers=3, cores=3)
    assert resp.mean() == pytest.approx(erlang_c_response(2.1, 1.0, 3), rel=0.05)


def test_k_processes_on_one_core_pool_into_mm1() -> None:
    """Three processes sharing one core: the core serves whenever any job is present, and
    exponential work makes the number in the system an M/M/1 chain of rate 1."""
    rng = np.random.default_rng(4)
    resp = run_station(0.7, lambda: float(rng.exponential(1.0)), servers=3, cores=1)
    assert resp.mean() == pytest.approx(1 / (1 - 0.7), rel=0.05)
    # with three cores it is M/M/3 instead: much faster, and the comparison can fail
    fast = run_station(0.7, lambda: float(rng.exponential(1.0)), servers=3, cores=3)
    assert fast.mean() == pytest.approx(erlang_c_response(0.7, 1.0, 3), rel=0.05)
    assert fast.mean() < 0.5 * resp.mean()


def test_two_stations_share_one_core() -> None:
    """Two single-process stations on one core (each 0.35 load, exponential work): pooled,
    an M/M/1 at 0.7; alone on the core each would be an M/M/1 at 0.35."""
    env = simpy.Environment()
    host = Host(env, 1)
    stations = [Station(host), Station(host)]
    rng = np.random.default_rng(5)
    n = 100_000
    resp: list[float] = []

    def source(env: simpy.Environment, st: Station, seed: int):  # type: ignore[no-untyped-def]
        r = np.random.default_rng(seed)
        for _ in range(n):
            yield env.timeout(r.exponential(1 / 0.35))
            t0 = env.now
            st.submit(float(rng.exponential(1.0)), lambda t0=t0: resp.append(env.now - t0))

    env.process(source(env, stations[0], 10))
    env.process(source(env, stations[1], 11))
    env.run()
    mean = float(np.mean(resp))
    assert mean == pytest.approx(1 / (1 - 0.7), rel=0.05)
    assert mean > 1.3 / (1 - 0.35)  # what each would see with a core of its own


def test_processor_sharing_sample_path() -> None:
    """Worked by hand: on one core, A (1 s) from 0 and B (1 s) from 0.5 share from 0.5 at
    half speed each; A ends at 1.5, B at 2.0. On two cores each runs at full speed."""
    for cores, want in ((1, {"A": 1.5, "B": 2.0}), (2, {"A": 1.0, "B": 1.5})):
        assert two_jobs(cores) == pytest.approx(want)


def two_jobs(cores: float) -> dict[str, float]:
    env = simpy.Environment()
    host = Host(env, cores)
    ends: dict[str, float] = {}
    host.run(1.0, lambda: ends.__setitem__("A", env.now))
    env.run(until=0.5)
    host.run(1.0, lambda: ends.__setitem__("B", env.now))
    env.run()
    assert host.busy_s == pytest.approx(2.0)
    return ends


def departures(gaps: np.ndarray, works: np.ndarray,
               **station: float) -> tuple[np.ndarray, Station]:
    """Jobs of ``works`` CPU seconds arriving ``gaps`` apart at one process (a
    :class:`Station` with ``station``'s costs) on a host with cores to spare: when each was
    done, and the station."""
    env = simpy.Environment()
    st = Station(Host(env, 4), 1, **station)
    got = np.full(len(gaps), np.nan)

    def arrivals(env: simpy.Environment):  # type: ignore[no-untyped-def]
        for i, (gap, work) in enumerate(zip(gaps, works, strict=True)):
            yield env.timeout(gap)
            st.submit(work, lambda i=i: got.__setitem__(i, env.now))

    env.process(arrivals(env))
    env.run()
    return got, st


def test_setup_on_wakeup_matches_the_recursion() -> None:
    """A job finding the process asleep costs ``setup`` more: the departures equal those of
    the FCFS recursion with that exceptional first service, job by job; and the share of
    jobs that wake the process falls as the load rises (the CPU per job with it)."""
    setup, n = 0.3, 20_000
    shares = []
    for lam in (0.2, 0.9):
        rng = np.random.default_rng(6)
        gaps = rng.exponential(1 / lam, n)
        works = rng.exponential(0.7, n)
        got, station = departures(gaps, works, setup_s=setup)
        arrive = np.cumsum(gaps)
        want = np.empty(n)
        last = -math.inf
        for i in range(n):
            idle = arrive[i] >= last
            last = max(arrive[i], last) + works[i] + (setup if idle else 0.0)
            want[i] = last
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
        assert station.jobs == n
        shares.append(station.wakeups / n)
    assert shares[0] > 0.7 and shares[1] < 0.4


def test_a_cold_process_runs_its_job_slower_by_how_long_it_slept() -> None:
    """``cold_scale``: a job that wakes the process after ``t`` asleep takes ``1 + c * (1 -
    exp(-t / cooling))`` times its work, one that finds it busy its own: the FCFS recursion
    with that service, job by job; at a high load fewer jobs pay it, so the CPU per job
    falls towards the work's."""
    c, cooling, n = 0.5, 2.0, 20_000
    per_job = []
    for lam in (0.2, 1.2):
        rng = np.random.default_rng(9)
        gaps, works = rng.exponential(1 / lam, n), rng.exponential(0.7, n)
        got, station = departures(gaps, works, cooling_s=cooling, cold_scale=c)
        arrive = np.cumsum(gaps)
        want = np.empty(n)
        last = -math.inf
        for i in range(n):
            slept = arrive[i] - last
            scale = 1.0 + c * -math.expm1(-slept / cooling) if slept > 0 else 1.0
            last = max(arrive[i], last) + works[i] * scale
            want[i] = last
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
        per_job.append(station.cpu_s / works.sum() - 1.0)
    assert per_job[0] > 0.25 and per_job[1] < 0.15


def test_a_wakeups_wait_delays_like_a_setup_without_cpu() -> None:
    """A woken process that waits ``w`` for a core, with cores to spare, serves the same
    Poisson stream with the same departures as one whose wake-up costs ``w`` of CPU (both
    are the FCFS recursion with an exceptional first service); but it uses no CPU
    meanwhile, and counts what it waited."""
    n, w = 5_000, 0.3
    rng = np.random.default_rng(8)
    gaps, works = rng.exponential(1 / 0.5, n), rng.exponential(0.7, n)
    (by_setup, s1), (by_wait, s2) = (departures(gaps, works, setup_s=w),
                                     departures(gaps, works, wait_s=w))
    np.testing.assert_allclose(by_wait, by_setup, rtol=1e-9, atol=1e-9)
    assert s1.wakeups == s2.wakeups > n / 2 and s2.jobs == n
    assert s2.cpu_s == pytest.approx(works.sum())
    assert s1.cpu_s == pytest.approx(works.sum() + w * s1.wakeups)
    assert s2.waited_s == pytest.approx(w * s2.wakeups) and s1.waited_s == 0.0


def test_a_waiting_process_leaves_the_core_to_others() -> None:
    """One core: a woken process waits 1 s, then runs 1 s; another process's job of 1 s
    started at the same moment has the core to itself meanwhile (done at 1, the first at
    2). Were the wait CPU (a setup), the two would share the core (done at 2 and 3); a job
    arriving during the wait queues behind the woken one."""
    def ends(**kw: float) -> dict[str, float]:
        env = simpy.Environment()
        host = Host(env, 1)
        station = Station(host, 1, **kw)
        out: dict[str, float] = {}
        station.submit(1.0, lambda: out.__setitem__("woken", env.now))
        host.run(1.0, lambda: out.__setitem__("other", env.now))
        env.run(until=0.5)
        station.submit(0.5, lambda: out.__setitem__("next", env.now))
        env.run()
        return out

    assert ends(wait_s=1.0) == pytest.approx({"woken": 2.0, "other": 1.0, "next": 2.5})
    assert ends(setup_s=1.0) == pytest.approx({"woken": 3.0, "other": 2.0, "next": 3.5})


def test_jobs_ready_together_share_a_wakeup() -> None:
    env = simpy.Environment()
    station = Station(Host(env, 1), 1, 0.5)
    ends: list[float] = []
    station.submit_all([(1.0, lambda: ends.append(env.now)) for _ in range(3)])
    env.run()
    assert ends == pytest.approx([1.5, 2.5, 3.5]) and station.wakeups == 1


def test_cpu_counts_the_jobs_and_their_wakeups() -> None:
    """A station's CPU is its jobs' work plus what each wake-up cost: a job after a long
    sleep pays ``setup + cold``, one queued behind a busy process nothing more, one after
    a sleep of one cooling time ``setup + cold * (1 - 1/e)``."""
    env = simpy.Environment()
    station = Station(Host(env, 1), 1, setup_s=0.1, cold_s=0.2, cooling_s=1.0)
    station.submit(1.0, lambda: None)   # first ever: asleep for good, 1.3 in all
    station.submit(0.5, lambda: None)   # queued: ends at 1.8, no wake-up
    env.run()
    assert env.now == pytest.approx(1.8)
    env.run(until=2.8)                  # asleep for one cooling time
    station.submit(0.25, lambda: None)
    env.run()
    woke = 0.1 + 0.2 * (1 - math.exp(-1.0))
    assert station.cpu_s == pytest.approx(1.0 + 0.3 + 0.5 + 0.25 + woke)
    assert station.wakeups == 2 and station.jobs == 3


def test_cold_scale_scales_the_job_and_not_its_wakeup() -> None:
    """With ``cold_scale`` c the same three jobs cost: the first (asleep for good) ``1 + c``
    times its work plus ``setup + cold``, the queued one its own, the one after a cooling
    time ``1 + c * (1 - 1/e)`` times its work plus its wake-up; with ``cooling_s`` 0 every
    wake-up is fully cold; with c = 0 the CPU is exactly that without it."""
    def cpu(**kw: float) -> float:
        env = simpy.Environment()
        station = Station(Host(env, 1), 1, setup_s=0.1, cold_s=0.2, **kw)
        station.submit(1.0, lambda: None)
        station.submit(0.5, lambda: None)
        env.run()
        env.run(until=env.now + 1.0)
        station.submit(0.25, lambda: None)
        env.run()
        return station.cpu_s

    c, e = 0.4, 1 - math.exp(-1.0)
    assert cpu(cooling_s=1.0, cold_scale=c) == pytest.approx(
        1.0 * (1 + c) + 0.3 + 0.5 + 0.25 * (1 + c * e) + 0.1 + 0.2 * e)
    assert cpu(cooling_s=0.0, cold_scale=c) == pytest.approx(
        1.0 * (1 + c) + 0.3 + 0.5 + 0.25 * (1 + c) + 0.3)
    assert cpu(cooling_s=1.0, cold_scale=0.0) == cpu(cooling_s=1.0)


def a_peer_ran(peer_job: tuple[float, float] | None) -> float:
    """The CPU of worker A's second job (1 s of work) after it slept 0.01 s (cooling 10 s:
    nearly hot), when its peer B ran a job (start, work) or none."""
    env = simpy.Environment()
    host = Host(env, 2)
    a = Station(host, 1, setup_s=0.1, cold_s=0.2, cooling_s=10.0, cold_scale=0.5)
    b = Station(host, 1)
    a.peers = [b]
    a.submit(1.0, lambda: None)           # fully cold, the first: 1.5 + 0.3, ends at 1.8
    if peer_job is not None:
        start, work = peer_job
        env.timeout(start).callbacks.append(lambda _: b.submit(work, lambda: None))
    env.run(until=1.81)
    before = a.cpu_s
    a.submit(1.0, lambda: None)
    env.run()
    return a.cpu_s - before


def test_a_peer_that_ran_while_it_slept_leaves_it_cold() -> None:
    """Worker A slept 0.01 s of a 10-s cooling time: alone, its job costs nearly the hot
    ``1 + setup``; if its peer started or ended a job meanwhile, or was running one all
    along, as much as after a long sleep (the peer's forward pass evicted A's weights); a
    peer that ran before A went to sleep leaves it hot."""
    hot = 1.0 * (1 + 0.5 * -math.expm1(-0.001)) + 0.1 + 0.2 * -math.expm1(-0.001)
    cold = 1.5 + 0.3
    assert a_peer_ran(None) == pytest.approx(hot)
    assert a_peer_ran((1.805, 0.001)) == pytest.approx(cold)   # started and ended in A's sleep
    assert a_peer_ran((1.0, 0.805)) == pytest.approx(cold)     # ended in it
    assert a_peer_ran((0.0, 5.0)) == pytest.approx(cold)       # running all along
    assert a_peer_ran((0.5, 0.5)) == pytest.approx(hot)        # done before A slept


def run_jobs(host: Host | CoreQueue | RunQueues, lam: float, work: Callable[[], float],
             n: int = 30_000, seed: int = 4) -> np.ndarray:
    """Poisson arrivals at ``lam``, each job a process of its own on ``host``: the
    response time of every job."""
    env = host.env
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / lam, n)
    resp = np.full(n, np.nan)

    def arrivals(env: simpy.Environment) -> Generator[simpy.Event, None, None]:
        for i in range(n):
            yield env.timeout(gaps[i])
            t0 = env.now
            host.run(work(), lambda i=i, t0=t0: resp.__setitem__(i, env.now - t0))

    env.process(arrivals(env))
    env.run()
    assert not np.isnan(resp).any()
    return resp


@pytest.mark.parametrize(("slice_s", "want"), [
    (math.inf, 0.7 / (2 * 0.3) + 1.0),    # run to the end: FCFS, Pollaczek-Khinchine
    (0.05, 1.0 / 0.3),                    # a fine quantum: processor sharing's s / (1 - rho)
])
def test_round_robin_goes_from_fcfs_to_processor_sharing(slice_s: float, want: float) -> None:
    """M/D/1 on one core with ``cpu: queue``: bursts that run to their end are FCFS (P-K,
    2.17 s), a quantum small against the service time is processor sharing (3.33 s), and
    so is :class:`Host` itself."""
    env = simpy.Environment()
    assert run_jobs(CoreQueue(env, 1, slice_s), 0.7, lambda: 1.0).mean() == pytest.approx(
        want, rel=0.05)
    if slice_s < 1:
        env = simpy.Environment()
        assert run_jobs(Host(env, 1), 0.7, lambda: 1.0).mean() == pytest.approx(want, rel=0.05)


def test_round_robin_mm1_whatever_the_quantum() -> None:
    """Exponential work: M/M/1's 1 / (mu - lambda) with any quantum."""
    rng = np.random.default_rng(6)
    env = simpy.Environment()
    resp = run_jobs(CoreQueue(env, 1, 0.5), 0.7, lambda: float(rng.exponential(1.0)))
    assert resp.mean() == pytest.approx(1 / 0.3, rel=0.06)


@pytest.mark.parametrize(("slice_s", "ends"), [(1.0, {"a": 3.5, "b": 2.0}),
                                               (math.inf, {"a": 2.5, "b": 3.5})])
def test_round_robin_sample_path(slice_s: float, ends: dict[str, float]) -> None:
    """One core, A's 2.5 s from 0, B's 1 s from 0.5: with a 1-s quantum A runs 0-1, B 1-2,
    A 2-3.5; without one A runs to 2.5 and B after it."""
    env = simpy.Environment()
    host = CoreQueue(env, 1, slice_s)
    out: dict[str, float] = {}
    host.run(2.5, lambda: out.__setitem__("a", env.now))
    env.timeout(0.5).callbacks.append(
        lambda _: host.run(1.0, lambda: out.__setitem__("b", env.now)))
    env.run()
    assert out == pytest.approx(ends)
    assert host.busy_s == pytest.approx(3.5) and host.free == 1


def test_run_queues_on_one_core_is_processor_sharing() -> None:
    """One core: M/M/1 under processor sharing, mean response 1 / (mu - lambda), job for
    job what :class:`Host` on one core gives."""
    rng = np.random.default_rng(2)
    resp = run_jobs(RunQueues(simpy.Environment(), 1), 0.7, lambda: float(rng.exponential(1.0)),
                    n=100_000)
    assert resp.mean() == pytest.approx(1 / 0.3, rel=0.05)
    rng = np.random.default_rng(2)
    same = run_jobs(Host(simpy.Environment(), 1), 0.7, lambda: float(rng.exponential(1.0)),
                    n=100_000)
    assert np.array_equal(resp, same)


def test_run_queues_with_a_core_each_share_nothing() -> None:
    """As many cores as jobs: every job runs at full speed, whoever it belongs to."""
    env = simpy.Environment()
    host = RunQueues(env, 3)
    ends: dict[str, float] = {}
    for name, work in (("a", 2.0), ("b", 1.0), ("c", 3.0)):
        host.run(work, lambda n=name: ends.__setitem__(n, env.now), owner=name)
    env.run()
    assert ends == pytest.approx({"a": 2.0, "b": 1.0, "c": 3.0})
    assert host.busy_s == pytest.approx(6.0)


def three_processes(host: Host | RunQueues) -> dict[str, float]:
    """Worked by hand on two cores: A runs 10 s from 0; C 0.5 s from 0 (an idle core);
    B 4 s from 1 (the core C left idle); C again 2 s from 2."""
    env = host.env
    ends: dict[str, float] = {}

    def at(t: float, name: str, work: float, key: str) -> None:
        env.timeout(t).callbacks.append(lambda _: host.run(
            work, lambda: ends.__setitem__(key, env.now), owner=name))

    at(0.0, "A", 10.0, "A")
    at(0.0, "C", 0.5, "C0")
    at(1.0, "B", 4.0, "B")
    at(2.0, "C", 2.0, "C")
    env.run()
    return ends


def test_run_queues_leave_a_busy_process_its_core() -> None:
    """With run queues C's second job, finding no idle core, goes back to its own, where B
    runs: B and C share that core at half speed from 2 (C done at 6, B's last second alone:
    7) and A keeps the other to itself (10). Processor sharing gives each of the three 2/3
    of a core from 2: C's 2 s end at 5, B's last second at 6, and A, 2 s short at 5, at 11."""
    env = simpy.Environment()
    assert three_processes(RunQueues(env, 2)) == pytest.approx(
        {"A": 10.0, "C0": 0.5, "B": 7.0, "C": 6.0})
    assert three_processes(Host(simpy.Environment(), 2)) == pytest.approx(
        {"A": 11.0, "C0": 0.5, "B": 6.0, "C": 5.0})


def test_run_queues_place_a_new_process_on_the_least_busy_core() -> None:
    """No idle core and no core of its own: the core with the fewest jobs."""
    env = simpy.Environment()
    host = RunQueues(env, 2)
    host.run(5.0, lambda: None, owner="a")
    host.run(5.0, lambda: None, owner="b")
    host.run(5.0, lambda: None, owner="c")   # a tie: the first core
    assert host.core_for("d") == 1
    assert host.core_for("c") == 0            # its own, though busier
    assert host.core_for() == 1


def test_run_queues_prefer_the_own_core_and_else_an_idle_one() -> None:
    """Its own core when idle, even past a lower idle one; an idle core when its own is
    busy (the job is not made to share)."""
    env = simpy.Environment()
    host = RunQueues(env, 3)
    host.run(1.0, lambda: None, owner="a")     # core 0
    host.run(1.0, lambda: None, owner="b")     # core 1
    host.run(1.0, lambda: None, owner="c")     # core 2
    env.run()
    host.run(5.0, lambda: None, owner="x")     # core 0 now busy
    assert host.core_for("c") == 2             # its own idle core, not the lower idle 1
    assert host.core_for("a") == 1             # its own busy: an idle one


def test_a_station_keeps_its_core_under_run_queues() -> None:
    """A station with jobs back to back and two others on two cores (the third ran once on
    the second core before): with run queues the busy one runs at full speed (its jobs
    each 1 s apart), the two others share the second core; processor sharing slows it
    whenever all three run."""
    def ends(host: Host | RunQueues) -> list[float]:
        env = host.env
        busy, other, third = Station(host), Station(host), Station(host)
        done: list[float] = []
        for _ in range(6):
            busy.submit(1.0, lambda: done.append(env.now))
        env.timeout(0.2).callbacks.append(lambda _: third.submit(0.1, lambda: None))
        env.timeout(0.5).callbacks.append(lambda _: other.submit(4.0, lambda: None))
        env.timeout(1.5).callbacks.append(lambda _: third.submit(4.0, lambda: None))
        env.run()
        return done

    assert ends(RunQueues(simpy.Environment(), 2)) == pytest.approx([1, 2, 3, 4, 5, 6])
    assert ends(Host(simpy.Environment(), 2))[-1] > 6.5


def test_bad_arguments() -> None:
    env = simpy.Environment()
    with pytest.raises(ValueError, match="cores"):
        Host(env, 0)
    with pytest.raises(ValueError, match="servers"):
        Station(Host(env, 1), 0)
    with pytest.raises(ValueError, match="slice"):
        CoreQueue(env, 1, 0.0)
    with pytest.raises(ValueError, match="whole number"):
        RunQueues(env, 1.5)
    with pytest.raises(ValueError, match="whole number"):
        RunQueues(env, math.inf)
