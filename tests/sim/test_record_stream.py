"""Streaming records (issue 17): the records and the summary do not depend on how the stream
is cut, the file written chunk by chunk equals the in-memory table, and --records modes keep
the summary whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import sim.recorder
import sim.sinks
from sim.cli import main
from sim.config import parse_scenario
from sim.recorder import Recorder
from sim.records import records_frame
from sim.request import Batch, Request
from sim.run import Simulation
from sim.sinks import MemorySink, NullSink, RingSink, SampleSink, TableFile, parse_records
from sim.tally import summarize


def scenario(**over: Any) -> dict[str, Any]:
    """Two tenants, batching, a load that keeps queues long: requests finish far out of
    arrival order."""
    d: dict[str, Any] = {
        "seed": 5, "requests": 3000, "warmup_s": 0.05, "zoo": {"profile": "synthetic-7"},
        "cluster": {"workers": 2, "max_batch": 8, "batch_timeout_ms": 1.0},
        "service_time": {"type": "lognormal", "cv": 0.5}, "policy": {"type": "infaas"},
        "tenants": [
            {"name": "a", "arrivals": {"type": "poisson", "rate_rps": 3000},
             "slo": {"accuracy": {"type": "choice", "values": [90, 95, 97]},
                     "latency_ms": {"type": "uniform", "low": 1, "high": 8}}},
            {"name": "b", "arrivals": {"type": "gamma", "rate_rps": 800, "cv": 3},
             "slo": {"accuracy": {"type": "fixed", "value": 93},
                     "latency_ms": {"type": "fixed", "value": 5}}}]}
    d.update(over)
    return d


def run(data: dict[str, Any], sink: Any = None) -> tuple[Simulation, Any]:
    s = Simulation(parse_scenario(data), keep_requests=True)
    return s, s.run(sink=sink)


def reference(s: Simulation) -> pd.DataFrame:
    """The records built at once from every request object, as before streaming."""
    sys_ = s.system
    return records_frame(sys_.requests, s.tenant_names, s.zoo.names, s.zoo.accuracy,
                         sys_.defense.admits, sys_.sheds)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim.recorder, "CHUNK_ROWS", 97)


def ids(sink: MemorySink) -> list[list[int]]:
    """The ids of each chunk a sink was given."""
    return [p["id"].tolist() for p in sink.parts]


def approx_summary(a: Any, b: Any) -> None:
    """Equal, floats to 1e-12 relative (sums taken in another order)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            if k not in ("wall_time_s", "events_per_s"):
                approx_summary(a[k], b[k])
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12, nan_ok=True)
    else:
        assert a == b


def test_records_do_not_depend_on_the_chunking(small_chunks: None) -> None:
    s, res = run(scenario())
    ref = reference(s)
    finish = ref["finish_s"].to_numpy()
    assert (np.diff(finish) < 0).any(), "requests should finish out of id order here"
    pd.testing.assert_frame_equal(res.records.reset_index(drop=True), ref)
    assert res.recorded == len(ref) == 3000


@pytest.mark.parametrize("name", ["requests.parquet", "requests.csv"])
def test_streamed_file_equals_the_in_memory_table(tmp_path: Path, small_chunks: None,
                                                  name: str) -> None:
    path = tmp_path / name
    table = TableFile(path)
    s, res = run(scenario(), table)
    assert res.records is None and not path.exists()   # finished, not yet in place
    table.commit()
    ref = reference(s)
    if name.endswith(".csv"):
        whole = tmp_path / "whole.csv"
        ref.to_csv(whole, index=False)
        assert path.read_text() == whole.read_text()
    else:
        pd.testing.assert_frame_equal(pd.read_parquet(path), ref)
        assert len(__import__("pyarrow.parquet").parquet.ParquetFile(path).metadata
                   .to_dict()["row_groups"]) > 10   # written as it went, not at the end
    assert not list(tmp_path.glob(".requests*")), "no temporary file left"


def test_summary_does_not_depend_on_the_chunking(small_chunks: None) -> None:
    s, res = run(scenario())
    whole = summarize(reference(s), warmup_s=0.05, n_workers=2, seed=5, wall_time_s=1.0,
                      sim_events=None, area=s.system.area, loads=res.summary["model_loads"],
                      evictions=res.summary["evictions"]).to_json()
    approx_summary(res.summary, {**whole, "sim_time_s": res.summary["sim_time_s"]})
    assert res.summary["tenants"]["b"]["requests"] > 0


def test_shed_rows_stream_like_served_ones(small_chunks: None) -> None:
    data = scenario(cluster={"workers": 1, "max_batch": 4, "batch_timeout_ms": 1.0,
                             "shedding": {"deadline": True, "slack": 1.0}})
    s, res = run(data)
    ref = reference(s)
    assert ref["shed"].sum() > 0
    pd.testing.assert_frame_equal(res.records.reset_index(drop=True), ref)
    assert res.summary["shed"] == int(ref.loc[ref["arrival_s"] >= 0.05, "shed"].sum())


def test_records_none_and_sample_keep_the_whole_summary(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(scenario()))
    outs = {}
    for mode in ("all", "sample:250", "none"):
        out = tmp_path / mode.replace(":", "_")
        res = CliRunner().invoke(main, ["simulate", str(cfg), "-o", str(out), "--quiet",
                                        "--records", mode])
        assert res.exit_code == 0, res.output
        outs[mode] = out
    summaries = [json.loads((o / "summary.json").read_text()) for o in outs.values()]
    for other in summaries[1:]:
        approx_summary(other, summaries[0])
    every = pd.read_parquet(outs["all"] / "requests.parquet")
    sample = pd.read_parquet(outs["sample:250"] / "requests.parquet")
    assert len(sample) == 250 and sample["id"].is_monotonic_increasing
    pd.testing.assert_frame_equal(sample.reset_index(drop=True),
                                  every[every["id"].isin(sample["id"])].reset_index(drop=True))
    assert not (outs["none"] / "requests.parquet").exists()


def test_stale_records_are_removed_and_bad_modes_exit_2(tmp_path: Path) -> None:
    """The folder never pairs a summary with an earlier run's records, in either format."""
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(scenario(requests=200)))
    out = tmp_path / "o"
    out.mkdir()
    for args, kept in ((["--records", "none"], []), (["--csv"], ["requests.csv"]),
                       ([], ["requests.parquet"])):
        for name in ("requests.parquet", "requests.csv"):
            (out / name).write_text("old")
        res = CliRunner().invoke(main, ["simulate", str(cfg), "-o", str(out), "--quiet",
                                        *args])
        assert res.exit_code == 0, res.output
        assert sorted(p.name for p in out.glob("requests.*")) == kept
        assert all((out / k).read_bytes() != b"old" for k in kept)
    for bad in ("some", "sample:0", "sample:x", "sample:", "sample:\u00b2"):
        res = CliRunner().invoke(main, ["simulate", str(cfg), "-o", str(out), "--records", bad])
        assert res.exit_code == 2 and "--records" in res.output, res.output
        assert "Traceback" not in res.output


def test_sample_is_uniform_and_seeded() -> None:
    """Every record is equally likely to be kept: over many seeds each id's inclusion
    frequency is n / N (binomial bounds)."""
    n_rows, n_keep, trials = 40, 10, 4000
    df = pd.DataFrame({"id": np.arange(n_rows)})
    counts = np.zeros(n_rows)
    for seed in range(trials):
        out = MemorySink()
        sink = SampleSink(n_keep, np.random.default_rng(seed), out)
        for part in (df.iloc[:7], df.iloc[7:30], df.iloc[30:]):
            sink.write(part)
        sink.close()
        counts[ids(out)[0]] += 1
    p = n_keep / n_rows
    sd = np.sqrt(trials * p * (1 - p))
    assert np.all(np.abs(counts - trials * p) < 5 * sd)


def _finished(rid: int, t: float) -> Request:
    r = Request(rid, 0, 0.0, 90.0, 10.0)
    r.model = 0
    r.batch = Batch(rid, 0, 0, 0.0, 1)
    r.batch.finish = t
    return r


def test_rows_wait_for_every_lower_id() -> None:
    """A chunk's rows are passed on only up to the first id still in flight."""
    out = MemorySink()
    rec = Recorder(["t"], ["m"], [95.0], admission=False, shedding=False, sink=out,
                   chunk_rows=3)
    rec.add([_finished(1, 1.0), _finished(2, 1.0)])
    rec.add([_finished(4, 1.0)])          # chunk cut: 0 is still in flight
    assert ids(out) == [] and rec.next_id == 0
    rec.add([_finished(0, 2.0), _finished(3, 2.0), _finished(6, 2.0)])
    assert ids(out) == [[0, 1, 2, 3, 4]] and rec.next_id == 5
    rec.close()                             # the run is over: 6 goes (5 never came)
    assert ids(out) == [[0, 1, 2, 3, 4], [6]]


def test_a_lost_request_holds_back_at_most_max_waiting_rows() -> None:
    """A request that never finishes (lost in a live server) is given up on once more than
    ``max_waiting`` rows wait for it; if it comes after all, it is passed on, late."""
    out = MemorySink()
    rec = Recorder(["t"], ["m"], [95.0], admission=False, shedding=False, sink=out,
                   chunk_rows=2, max_waiting=3)
    rec.add([_finished(1, 1.0), _finished(2, 1.0)])
    rec.add([_finished(3, 1.0), _finished(4, 1.0)])
    assert ids(out) == [[1, 2, 3, 4]] and rec.next_id == 5   # 4 rows waited: 0 given up on
    rec.add([_finished(0, 2.0), _finished(5, 2.0)])
    assert ids(out) == [[1, 2, 3, 4], [0, 5]]
    rec.close()


def test_skipped_ids_are_not_waited_for() -> None:
    out = MemorySink()
    rec = Recorder(["t"], ["m"], [95.0], admission=False, shedding=False, sink=out,
                   chunk_rows=1)
    rec.skip(2)                             # its submission failed: it never comes
    rec.add([_finished(1, 1.0)])
    rec.add([_finished(3, 1.0)])
    assert ids(out) == []                  # 0 is still in flight
    rec.skip(0)
    rec.add([_finished(4, 1.0)])
    assert ids(out) == [[1, 3, 4]] and rec.next_id == 5


def test_a_failed_run_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted mid-run, with every records mode: no requests file, no hidden one."""
    calls = {"n": 0}
    real = Recorder._emit

    def interrupt(self: Recorder, cols: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(self, cols)

    monkeypatch.setattr(sim.recorder, "CHUNK_ROWS", 97)
    monkeypatch.setattr(Recorder, "_emit", interrupt)
    for mode in ("all", "sample:10"):
        calls["n"] = 0
        sink, _ = sim.sinks.sink_for(mode, tmp_path / "requests.parquet",
                                        lambda: np.random.default_rng(0))
        with pytest.raises(KeyboardInterrupt):
            Simulation(parse_scenario(scenario())).run(sink=sink)
        assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    import pyarrow.parquet as pq

    def full(self: Any, table: Any, *a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(scenario(requests=200)))
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["simulate", str(cfg), "-o", str(out), "--quiet"])
    assert res.exit_code == 2 and "No space left on device" in res.output, res.output
    assert "Traceback" not in res.output and "requests.parquet" in res.output
    assert list(out.iterdir()) == []


def test_an_attack_refused_before_running_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["attack", "examples/attack-fingerprint.yaml", "-o",
                                    str(out), "--set", "attacker.target=nosuchmodel"])
    assert res.exit_code == 2, res.output
    assert list(out.iterdir()) == []


def test_a_run_keeps_no_request_objects_when_records_are_dropped() -> None:
    s = Simulation(parse_scenario(scenario()))
    res = s.run(sink=NullSink())
    assert res.records is None and res.recorded == 3000
    assert s.system.requests == [] and s.system.recorder is not None
    assert s.system.recorder.buffer == [] and s.system.recorder.waiting is None
    assert res.summary["requests"] > 0


def rows(ids: list[int], tenants: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "tenant": pd.Categorical.from_codes(
        [len(tenants) - 1] * len(ids), tenants)})


def test_ring_keeps_the_latest_rows() -> None:
    ring = RingSink(5)
    ring.PART_ROWS = 2
    for lo in (0, 3, 6):
        ring.write(rows(list(range(lo, lo + 3)), ["a"]))
    assert ring.size == 5 and ring.dropped == 4
    page = ring.page(after=4, limit=3, tenants=["a", "b"])
    assert page is not None and page["id"].tolist() == [5, 6, 7]
    assert list(page["tenant"].cat.categories) == ["a", "b"]
    assert ring.page(after=8, limit=3, tenants=["a"]) is None


def test_ring_merges_small_writes_and_drops_late_rows() -> None:
    """A flush per page request writes a row or two: they join the last part (with the
    tenants named so far), and a row older than one already held is dropped, counted."""
    ring = RingSink(100)
    ring.write(rows([0, 1], ["a"]))
    ring.write(rows([3], ["a", "b"]))
    ring.write(rows([2, 4], ["a", "b"]))        # 2 came after 3: late
    assert len(ring.parts) == 1 and ring.size == 4 and ring.dropped == 1
    page = ring.page(after=-1, limit=10, tenants=["a", "b"])
    assert page is not None and page["id"].tolist() == [0, 1, 3, 4]
    assert page["tenant"].tolist() == ["a", "a", "b", "b"]


@pytest.mark.parametrize("mode,want", [("all", ("all", 0)), ("none", ("none", 0)),
                                       ("sample:12", ("sample", 12))])
def test_parse_records(mode: str, want: tuple[str, int]) -> None:
    assert parse_records(mode) == want
