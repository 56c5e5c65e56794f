"""A zoo build on a tiny subset: trains, evaluates, profiles and writes a valid profile."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from sim.errors import UserError
from sim.profiles import load_profile
from zoo_profiles.build import build_zoo, device_profile_name, profile_zoo
from zoo_profiles.cli import zoo
from zoo_profiles.datasets import load_mnist5k
from zoo_profiles.models import build_model
from zoo_profiles.profiler import load_weights, sha256_file
from zoo_profiles.train import accuracy

ARCHS = ["logreg", "mlp_small", "cnn_small"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zoo")
    return build_zoo("mnist5k", "tiny-cpu", "cpu", out, seed=0, epochs=1, subset=200,
                     progress=False, archs=ARCHS, batch_sizes=(1, 2, 4), budget_s=0.02)


def test_tiny_build_writes_a_valid_profile(tiny: Path) -> None:
    prof = load_profile(tiny)
    assert prof.names == ARCHS
    meta = prof.metadata.model_dump()
    assert meta["source"] == "measured" and meta["dataset"] == "mnist5k"
    assert meta["batch_sizes"] == [1, 2, 4] and meta["device"] == "cpu"
    assert meta["split"] == {"train": 200, "attacker": 200, "test": 200}
    assert meta["threads"] >= 1 and meta["torch"] and meta["seed"] == 0
    for m in prof.models:
        assert sorted(m.latency_ms) == [1, 2, 4]
        assert 0 < m.latency_ms[1].p50 <= m.latency_ms[1].p99
        assert m.params > 0 and m.memory_mb > 0 and m.load_ms > 0
        assert m.weights == f"tiny-cpu/{m.name}.safetensors"
        assert (tiny.parent / m.weights).is_file()
        assert m.weights_sha256 == sha256_file(tiny.parent / m.weights)


def test_weights_reproduce_accuracy(tiny: Path) -> None:
    prof = load_profile(tiny)
    test = load_mnist5k().subset(200).test
    for m in prof.models:
        assert m.weights is not None
        model = load_weights(build_model(m.arch), tiny.parent / m.weights,
                             sha256=m.weights_sha256)
        assert accuracy(model, test) == m.accuracy


def test_training_is_deterministic(tiny: Path, tmp_path: Path) -> None:
    again = build_zoo("mnist5k", "tiny-cpu", "cpu", tmp_path, seed=0, epochs=1, subset=200,
                      progress=False, archs=["cnn_small"], batch_sizes=(1,), budget_s=0.01)
    a = load_file(tiny.parent / "tiny-cpu" / "cnn_small.safetensors")
    b = load_file(again.parent / "tiny-cpu" / "cnn_small.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical weights


def test_profile_zoo_keeps_accuracy(tiny: Path, tmp_path: Path) -> None:
    path = profile_zoo(str(tiny), "cpu", out_name="tiny-again", out_dir=tmp_path,
                       progress=False, budget_s=0.01)
    old, new = load_profile(tiny), load_profile(path)
    assert new.name == "tiny-again" and new.metadata.model_dump()["profiled_from"] == "tiny-cpu"
    assert [m.accuracy for m in new.models] == [m.accuracy for m in old.models]
    for m in new.models:
        assert m.weights is not None and (path.parent / m.weights).is_file()
    assert [m.weights_sha256 for m in new.models] == [m.weights_sha256 for m in old.models]


def test_device_profile_name() -> None:
    assert device_profile_name("mnist5k-cpu", "cuda") == "mnist5k-cuda"
    assert device_profile_name("zoo", "cuda") == "zoo-cuda"


def test_bad_build_arguments(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        build_zoo("mnist5k", "x", "tpu", tmp_path)
    with pytest.raises(UserError, match="unknown dataset"):
        build_zoo("emnist", "x", "cpu", tmp_path)
    with pytest.raises(UserError, match="unknown model architectures"):
        build_zoo("mnist5k", "x", "cpu", tmp_path, archs=["alexnet"])


def test_cli_build_show_plot(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(zoo, ["build", "--name", "cli-cpu", "--out", str(tmp_path),
                              "--subset", "100", "--epochs", "1", "--archs", "logreg,mlp_small",
                              "--batch-sizes", "1,2", "--budget-s", "0.01", "--no-progress"])
    assert res.exit_code == 0, res.output
    path = tmp_path / "cli-cpu.yaml"
    assert "wrote" in res.output and path.is_file()
    res = runner.invoke(zoo, ["show", str(path)])
    assert res.exit_code == 0 and "logreg" in res.output and "Pareto" in res.output
    png = tmp_path / "zoo.png"
    res = runner.invoke(zoo, ["plot", str(path), "-o", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_build_refuses_to_overwrite_a_profile_without_force(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(zoo, ["build", "--dataset", "mnist5k", "--device", "cpu"])
    assert isinstance(res.exception, UserError) and "--force" in str(res.exception)
    assert "mnist5k-cpu.yaml exists" in str(res.exception)   # the shipped zoo, untouched
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    res = runner.invoke(zoo, ["build", "--name", "mine", "--out", str(tmp_path)])
    assert isinstance(res.exception, UserError) and "--force" in str(res.exception)
    assert (tmp_path / "mine.yaml").read_text() == "name: mine\n"


def test_cli_user_errors() -> None:
    runner = CliRunner()
    res = runner.invoke(zoo, ["build", "--dataset", "nope"])
    assert isinstance(res.exception, UserError) and "unknown dataset" in str(res.exception)
    res = runner.invoke(zoo, ["build", "--device", "tpu"])
    assert isinstance(res.exception, UserError)
    res = runner.invoke(zoo, ["build", "--batch-sizes", "2,4"])
    assert isinstance(res.exception, UserError) and "including 1" in str(res.exception)
    res = runner.invoke(zoo, ["show", "no-such-zoo"])
    assert isinstance(res.exception, UserError)


def test_cuda_request_without_gpu_is_a_user_error(tiny: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UserError, match="no CUDA GPU"):
        profile_zoo(str(tiny), "cuda")
