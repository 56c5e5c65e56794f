"""The shipped profiles: the measured mnist5k zoo and the published CIFAR zoos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.profiles import PROFILE_DIR, ZooProfile, load_profile
from zoo_profiles.datasets import load_mnist5k
from zoo_profiles.models import build_model
from zoo_profiles.profiler import BATCH_SIZES, load_weights
from zoo_profiles.published import build_published, read_published_csv
from zoo_profiles.train import accuracy

ROOT = Path(__file__).resolve().parents[2]
FACTS = ROOT.parent / "shared" / "zoo_facts"


def test_mnist5k_cpu_profile_is_a_diverse_zoo() -> None:
    prof = load_profile("mnist5k-cpu")
    meta = prof.metadata.model_dump()
    assert meta["source"] == "measured" and meta["dataset"] == "mnist5k"
    assert meta["batch_sizes"] == list(BATCH_SIZES)
    assert meta["split"] == {"train": 2500, "attacker": 1500, "test": 1000}
    assert len(prof.models) >= 7
    accs = [m.accuracy for m in prof.models]
    assert max(accs) - min(accs) >= 5
    lat1 = [m.latency_ms[1].p50 for m in prof.models]
    assert max(lat1) / min(lat1) >= 20
    assert len(prof.pareto_front) >= len(prof.models) // 2


def test_mnist5k_cpu_weights_reproduce_the_profiled_accuracy() -> None:
    prof = load_profile("mnist5k-cpu")
    meta = prof.metadata.model_dump()
    ds = load_mnist5k(split_seed=meta["split_seed"])
    total = 0
    for m in prof.models:
        assert m.weights is not None
        path = PROFILE_DIR / m.weights
        total += path.stat().st_size
        model = load_weights(build_model(m.arch, tuple(meta["input_shape"])), path,
                             sha256=m.weights_sha256)
        assert accuracy(model, ds.test) == m.accuracy, m.name
    assert total < 8 * 2**20


@pytest.mark.parametrize("zoo", ["mnist5k", "mnist1d", "mnist1d-regime"])
def test_cuda_profiles_time_the_cpu_zoos_own_weights_on_a_gpu(zoo: str) -> None:
    """``zoosim zoo profile <zoo>-cpu --device cuda``: new latencies, the same models."""
    cpu, gpu = load_profile(f"{zoo}-cpu"), load_profile(f"{zoo}-cuda")
    meta = gpu.metadata.model_dump()
    assert meta["device"] == "cuda" and meta["profiled_from"] == f"{zoo}-cpu"
    assert "H200" in meta["hardware"] and "cu" in meta["torch"]

    def same(p: ZooProfile) -> list[tuple[object, ...]]:
        return [(m.name, m.arch, m.accuracy, m.weights, m.weights_sha256) for m in p.models]

    assert same(gpu) == same(cpu)
    assert all(sorted(g.latency_ms) == sorted(c.latency_ms)
               for g, c in zip(gpu.models, cpu.models, strict=True))


@pytest.mark.parametrize("name", ["cifar10-published", "cifar100-published"])
def test_published_profiles_say_so(name: str) -> None:
    prof = load_profile(name)
    meta = prof.metadata.model_dump()
    assert meta["source"] == "published"
    assert "A40" in meta["hardware"] and "unstated" in meta["latency_note"]
    assert "ppml" in meta["citation"] and "chenyaofo" in meta["citation"]
    assert len(prof.models) == 25
    assert all(list(m.latency_ms) == [1] and m.weights is None for m in prof.models)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_published_profiles_match_the_facts(dataset: str, tmp_path: Path) -> None:
    csv = FACTS / f"{dataset}_zoo_published.csv"
    if not csv.is_file():
        pytest.skip(f"{csv} not present (the shared facts live beside the checkout)")
    rows = read_published_csv(csv)
    prof = load_profile(f"{dataset}-published")
    assert [(m.name, m.accuracy, m.latency_ms[1].p50) for m in prof.models] == [
        (r["model"], r["accuracy"], r["latency_ms"]) for r in rows]
    regenerated = build_published(csv, tmp_path)
    assert regenerated.read_text() == (PROFILE_DIR / f"{dataset}-published.yaml").read_text()


def test_cli_module_imports_no_torch() -> None:
    code = ("import sys, zoo_profiles.cli; "
            "bad = [m for m in ('torch', 'seaborn', 'matplotlib') if m in sys.modules]; "
            "sys.exit(f'imported {bad}' if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr + res.stdout
