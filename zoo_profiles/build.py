"""Build a measured zoo: train every model family, evaluate it, profile it, write the profile.

``build_zoo`` writes ``<out_dir>/<name>.yaml`` (docs/architecture.md, "Zoo profiles") and the
weights as ``<out_dir>/<name>/<arch>.safetensors`` (never pickle). Training and evaluation always
run on the CPU, where they are deterministic (:mod:`zoo_profiles.train`); only the latency,
memory and load-time profile (:mod:`zoo_profiles.profiler`) uses ``device``. ``profile_zoo``
re-measures an existing zoo's latency on another device (or again on this one), keeping its
weights and accuracies, and writes a profile named for that device (``mnist5k-cpu`` ->
``mnist5k-cuda``).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from sim.errors import UserError
from sim.profiles import PROFILE_DIR, load_profile, resolve_profile_path
from zoo_profiles.datasets import Dataset, load_dataset, split_digest
from zoo_profiles.models import ARCHS, Shape, build_model, count_params, default_archs
from zoo_profiles.profile_io import write_profile
from zoo_profiles.profiler import (
    BATCH_SIZES,
    ROUNDS,
    check_device,
    latency_note,
    load_weights,
    measure_latencies,
    measure_load_ms,
    memory_mb,
    sha256_file,
    torch_threads,
)
from zoo_profiles.train import accuracy, init_model, recipe_for, train_model

MEMORY_NOTE = ("parameters + buffers + largest single-layer (input + output) activation at the "
               "largest profiled batch size, MiB; allocator overhead not counted")
LOAD_NOTE = ("median of 5 warm-cache loads: read safetensors file, check its sha256, copy into a "
             "fresh model, move to the device")


def hardware(device: str) -> str:
    """The CPU model (from /proc/cpuinfo where readable) or the CUDA device name."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _environment(device: str, threads: int) -> dict[str, Any]:
    return {"device": device, "hardware": hardware(device), "torch": str(torch.__version__),
            "threads": threads, "cpu_count": os.cpu_count(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


@dataclass
class _Member:
    """A trained (or loaded) zoo model waiting to be profiled."""

    name: str
    arch: str
    model: torch.nn.Module
    accuracy: float
    weights: Path


def _profile(members: list[_Member], profile_dir: Path, in_shape: Shape, num_classes: int,
             device: str, batch_sizes: Sequence[int], seed: int, budget_s: float,
             threads: int | None, bar: tqdm[Any]) -> tuple[list[dict[str, Any]], int]:
    """Profile entries of ``members`` (latency in rounds over all of them, then memory and load
    time), and the number of threads used."""
    def tick(name: str) -> None:
        bar.set_postfix_str(f"{name}: latency")
        bar.update()

    entries = []
    with torch_threads(threads) as used:
        latency = measure_latencies({m.name: m.model for m in members}, in_shape, device,
                                    batch_sizes, seed, budget_s, ROUNDS, on_round=tick)
        for m in members:
            bar.set_postfix_str(f"{m.name}: memory, load time")
            digest = sha256_file(m.weights)
            entries.append({
                "name": m.name, "arch": m.arch, "params": count_params(m.model),
                "accuracy": m.accuracy, "latency_ms": latency[m.name],
                "memory_mb": memory_mb(m.model, in_shape, max(batch_sizes)),
                "load_ms": measure_load_ms(m.arch, m.weights, in_shape, num_classes, device,
                                           sha256=digest),
                "weights": os.path.relpath(m.weights, profile_dir),
                "weights_sha256": digest,
            })
            bar.update()
    return entries, used


def build_zoo(dataset: str | Dataset, name: str, device: str = "cpu",
              out_dir: str | Path | None = None, seed: int = 0, epochs: int | None = None,
              subset: int | None = None, progress: bool = True,
              archs: Sequence[str] | None = None, batch_sizes: Sequence[int] = BATCH_SIZES,
              data_dir: str | Path | None = None, split_seed: int = 0,
              budget_s: float = 0.5, threads: int | None = 1) -> Path:
    """Train, evaluate and profile every model in ``archs``; returns the profile's path.

    ``epochs`` None takes the dataset's recipe (:data:`zoo_profiles.train.RECIPES`). Training
    uses torch's default thread count; profiling uses ``threads`` (None: the default).
    """
    from safetensors.torch import save_file

    start = time.perf_counter()
    check_device(device)
    unknown = [a for a in archs or () if a not in ARCHS]
    if unknown:
        raise UserError(f"unknown model architectures {unknown}; choose from {sorted(ARCHS)}")
    if epochs is not None and epochs < 1:
        raise UserError(f"epochs must be >= 1, got {epochs}")
    if not batch_sizes or 1 not in batch_sizes or min(batch_sizes) < 1:
        raise UserError(f"batch sizes must be positive and include 1, got {list(batch_sizes)}")
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, data_dir, split_seed)
    ds = ds.subset(subset)
    archs = list(archs or default_archs(ds.in_shape))
    recipe = recipe_for(ds.name, epochs)
    out = Path(out_dir) if out_dir is not None else PROFILE_DIR
    weights_dir = out / name
    weights_dir.mkdir(parents=True, exist_ok=True)
    members: list[_Member] = []
    bar = tqdm(total=(2 + ROUNDS + 1) * len(archs), desc=f"zoo {name}", unit="stage",
               disable=not progress)
    for arch in archs:
        bar.set_postfix_str(f"{arch}: train")
        model = init_model(arch, ds.in_shape, ds.num_classes, seed)
        train_model(model, ds.train, arch=arch, seed=seed, epochs=recipe.epochs, lr=recipe.lr,
                    batch_size=recipe.batch_size)
        bar.update()
        bar.set_postfix_str(f"{arch}: evaluate")
        acc = accuracy(model, ds.test)
        weights = weights_dir / f"{arch}.safetensors"
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(weights), metadata={"arch": arch, "dataset": ds.name,
                                                  "accuracy": str(acc)})
        weights.chmod(0o644)
        members.append(_Member(arch, arch, model, acc, weights))
        bar.update()
    models, used = _profile(members, out, ds.in_shape, ds.num_classes, device, batch_sizes,
                            seed, budget_s, threads, bar)
    bar.close()
    metadata = {
        "source": "measured", "dataset": ds.name, "split": ds.sizes(), "split_seed": split_seed,
        "split_digest": split_digest(ds), "subset": subset,
        **_environment(device, used), "train_threads": torch.get_num_threads(),
        "seed": seed, "epochs": recipe.epochs, "training": recipe.describe(),
        "batch_sizes": list(batch_sizes), "input_shape": list(ds.in_shape),
        "num_classes": ds.num_classes, "accuracy": "test top-1 percent, CPU, eval mode",
        "latency_note": latency_note(budget_s), "memory_note": MEMORY_NOTE, "load_note": LOAD_NOTE,
        "build_wall_s": round(time.perf_counter() - start, 1),
    }
    path = out / f"{name}.yaml"
    write_profile(path, {"name": name, "metadata": metadata, "models": models})
    return path


def device_profile_name(name: str, device: str) -> str:
    """``mnist5k-cpu`` -> ``mnist5k-cuda``: the name of a zoo's profile for another device."""
    for suffix in ("-cpu", "-cuda"):
        if name.endswith(suffix):
            return name[: -len(suffix)] + f"-{device}"
    return f"{name}-{device}"


def profile_zoo(name: str, device: str, out_name: str | None = None,
                out_dir: str | Path | None = None, progress: bool = True, seed: int = 0,
                budget_s: float = 0.5, threads: int | None = 1) -> Path:
    """Re-measure latency, memory and load time of zoo ``name`` on ``device``; keep accuracy."""
    check_device(device)
    src = resolve_profile_path(name)
    prof = load_profile(src)
    typed = prof.metadata
    if typed.source != "measured" or typed.input_shape is None:
        raise UserError(f"{src}: only a measured zoo with weights can be re-profiled")
    in_shape: Shape = typed.input_shape
    num_classes = typed.num_classes
    batch_sizes = typed.batch_sizes or sorted(prof.models[0].latency_ms)
    meta = typed.model_dump(exclude_unset=True)
    out = Path(out_dir) if out_dir is not None else src.parent
    target = out_name or device_profile_name(prof.name, device)
    members = []
    for m in prof.models:
        if m.weights is None:
            raise UserError(f"{src}: model {m.name!r} has no weights to profile")
        weights = (src.parent / m.weights).resolve()
        model = load_weights(build_model(m.arch, in_shape, num_classes), weights, "cpu",
                             sha256=m.weights_sha256)
        members.append(_Member(m.name, m.arch, model, m.accuracy, weights))
    with tqdm(total=(ROUNDS + 1) * len(members), desc=f"profile {target}", unit="stage",
              disable=not progress) as bar:
        models, used = _profile(members, out, in_shape, num_classes, device, batch_sizes,
                                seed, budget_s, threads, bar)
    meta.update(_environment(device, used), profiled_from=prof.name, batch_sizes=list(batch_sizes),
                latency_note=latency_note(budget_s))
    path = out / f"{target}.yaml"
    write_profile(path, {"name": target, "metadata": meta, "models": models})
    return path
