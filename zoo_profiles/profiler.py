"""Latency, memory and load-time profiler for zoo models.

Follows the profiling practice of INFaaS (Romero et al., ATC'21: per-variant latency profiled
for each batch size, median and tail) and Clockwork (Gujarati et al., OSDI'20: inference latency
of a DNN is predictable, so a short offline profile of each batch size stands for the service
time). For each batch size the model runs a few untimed warm-up passes, then timed ones under
``torch.inference_mode()`` (at least ``MIN_REPS``, at most ``MAX_REPS``, else about ``budget_s``
seconds), split into ``rounds`` sweeps over all the models of a zoo so that a burst of outside
load on a shared machine spoils one round rather than every run of one model. p50 and p99 are
numpy percentiles (linear interpolation) of the pooled wall-clock times in milliseconds. On CUDA
the device is synchronised before and after each pass, so a time covers the whole kernel
sequence. Inputs are seeded uniform noise of the model's input shape (the arithmetic of these
models does not depend on the values). The host's Python dispatch overhead is part of every
time, as it is of a real serving call. Profiling runs with a set number of intra-op threads
(default 1: one simulated worker stands for one core, and single-threaded times stay stable on a
shared machine, where a multi-threaded forward pass stalls whenever another process holds one of
its cores); the count is recorded in the profile.

``memory_mb`` = bytes of parameters and buffers + an estimate of the activation working set:
the largest (input + output) bytes of any single leaf module in one forward pass at the largest
profiled batch size. It ignores allocator caching and framework overhead.

``load_ms`` = median over ``reps`` warm-cache runs of: read the safetensors file, check its
SHA-256 against the profile's ``weights_sha256`` (as every load does), copy it into a freshly
constructed (untimed) model, move the model to the device (synchronised on CUDA).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sim.errors import UserError, read_input_bytes
from zoo_profiles.models import Shape, build_model

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
WARMUP, MIN_REPS, MAX_REPS, ROUNDS = 5, 20, 200, 3


def latency_note(budget_s: float, rounds: int = ROUNDS) -> str:
    """How the latency figures were taken, for a profile's metadata."""
    return (f"wall-clock forward pass under torch.inference_mode after warm-up; median and p99 "
            f"of {MIN_REPS}-{MAX_REPS} timed runs per batch size, taken in {rounds} rounds "
            f"over the whole zoo (about {budget_s} s per model and batch size in all); host "
            "dispatch overhead included")


@contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run with ``n`` intra-op threads (None: torch's default), restoring the count after."""
    before = torch.get_num_threads()
    if n is not None:
        if n < 1:
            raise UserError(f"threads must be >= 1, got {n}")
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def check_device(device: str) -> torch.device:
    """``cpu`` or ``cuda`` as a torch device; anything else (or CUDA absent) is a UserError."""
    if device not in ("cpu", "cuda"):
        raise UserError(f"unknown device {device!r}; choose 'cpu' or 'cuda'")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but torch sees no CUDA GPU "
                        f"(torch {torch.__version__}); use --device cpu")
    return torch.device(device)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _sig(x: float, digits: int = 4) -> float:
    """``x`` rounded to ``digits`` significant digits (keeps microsecond figures non-zero)."""
    return float(f"{x:.{digits}g}")


def time_runs(model: nn.Module, x: torch.Tensor, *, warmup: int = WARMUP,
              min_reps: int = MIN_REPS, max_reps: int = MAX_REPS,
              budget_s: float = 0.5) -> list[float]:
    """Forward-pass times (ms) of ``model`` on ``x``: ``min_reps``..``max_reps`` runs."""
    dev = x.device
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        _sync(dev)
        deadline = time.perf_counter() + budget_s
        while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() < deadline):
            _sync(dev)
            t0 = time.perf_counter_ns()
            model(x)
            _sync(dev)
            times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


def latency_stats(times: list[float]) -> dict[str, float]:
    """``{"p50", "p99"}`` in ms (numpy's linear-interpolation percentiles, 4 significant digits)."""
    p50, p99 = np.percentile(times, [50, 99])
    return {"p50": _sig(float(p50)), "p99": _sig(float(p99))}


def measure_latencies(models: Mapping[str, nn.Module], in_shape: Shape, device: str,
                      batch_sizes: Sequence[int] = BATCH_SIZES, seed: int = 0,
                      budget_s: float = 0.5, rounds: int = ROUNDS,
                      on_round: Callable[[str], None] | None = None,
                      ) -> dict[str, dict[int, dict[str, float]]]:
    """Latency tables ``{model: {batch: {"p50", "p99"}}}`` (ms) of several models on ``device``.

    The runs of each (model, batch size) are split into ``rounds`` rounds that sweep the whole
    set of models, so a burst of load from other processes on a shared machine falls on one
    round rather than on all the runs of one model.
    """
    dev = check_device(device)
    gen = torch.Generator().manual_seed(seed)
    inputs = {b: torch.rand((b, *in_shape), generator=gen).to(dev) for b in batch_sizes}
    times: dict[str, dict[int, list[float]]] = {n: {b: [] for b in batch_sizes} for n in models}
    for _ in range(rounds):
        for name, model in models.items():
            model.to(dev).eval()
            for b in batch_sizes:
                times[name][b] += time_runs(model, inputs[b], min_reps=-(-MIN_REPS // rounds),
                                            max_reps=-(-MAX_REPS // rounds),
                                            budget_s=budget_s / rounds)
            if on_round is not None:
                on_round(name)
    return {n: {b: latency_stats(ts) for b, ts in t.items()} for n, t in times.items()}


def measure_latency(model: nn.Module, in_shape: Shape, device: str,
                    batch_sizes: Sequence[int] = BATCH_SIZES, seed: int = 0,
                    budget_s: float = 0.5, rounds: int = ROUNDS) -> dict[int, dict[str, float]]:
    """Latency table ``{batch: {"p50", "p99"}}`` (ms) of one model on ``device``."""
    return measure_latencies({"m": model}, in_shape, device, batch_sizes, seed, budget_s,
                             rounds)["m"]


def weights_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def activation_bytes(model: nn.Module, in_shape: Shape, batch: int) -> int:
    """Largest (input + output) bytes of one leaf module in a forward pass of ``batch`` inputs."""
    peak = 0

    def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal peak
        size = sum(t.numel() * t.element_size() for t in inputs if isinstance(t, torch.Tensor))
        peak = max(peak, size + output.numel() * output.element_size())

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        dev = next(model.parameters()).device
        with torch.inference_mode():
            model.eval()(torch.zeros((batch, *in_shape), device=dev))
    finally:
        for h in handles:
            h.remove()
    return peak


def memory_mb(model: nn.Module, in_shape: Shape, max_batch: int) -> float:
    """Weights plus the activation estimate at ``max_batch``, in MiB (see module docstring)."""
    total = weights_bytes(model) + activation_bytes(model, in_shape, max_batch)
    return _sig(total / 2**20)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, lowercase hex (what a profile's ``weights_sha256`` holds)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_weights(path: Path, sha256: str | None, parse: bool = True) -> bytes:
    """The bytes of a weights file, checked against ``sha256`` (None: unchecked) and, with
    ``parse``, parsed as safetensors (which catches a truncated file even without a digest),
    so that a corrupt, truncated or altered file is one :class:`UserError` and is never
    served. A loader checks and loads the very same bytes (no window between the two)."""
    from safetensors import SafetensorError, deserialize

    data = read_input_bytes(path, "weights file")
    if sha256 is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise UserError(f"{path}: weights do not match the profile's sha256 (corrupt or "
                            f"altered file: expected {sha256[:12]}..., got {got[:12]}...)")
    try:
        if parse:
            deserialize(data)  # type: ignore[no-untyped-call]
    except (SafetensorError, ValueError, OSError) as e:
        raise UserError(f"{path}: not a valid safetensors file ({e})") from None
    return data


def load_weights(model: nn.Module, path: Path, device: str = "cpu", *,
                 sha256: str | None) -> nn.Module:
    """Load a safetensors file into ``model`` (strict: every tensor must match) on ``device``.

    ``sha256`` is the profile's digest of the file, checked first (:func:`read_weights`); it
    is a required argument so that no caller loads weights unchecked by oversight (None: the
    profile has no digest, which callers warn about)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    data = read_weights(path, sha256, parse=False)  # load() parses them
    try:
        state = load(data)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, SafetensorError) as e:
        raise UserError(f"{path}: cannot load these weights into the model ({e})") from None
    return model.to(torch.device(device)).eval()


_WARNED: set[str] = set()


def warn_unchecked(profile: Path, models: list[str]) -> None:
    """One line on stderr, once per profile and process: ``models`` have weights but no
    ``weights_sha256`` (a profile older than the field), so they load unchecked."""
    key = str(profile)
    if not models or key in _WARNED:
        return
    _WARNED.add(key)
    print(f"warning: {profile}: no weights_sha256 for {', '.join(models)}: their weights load "
          "unchecked (add each file's sha256sum to the profile)", file=sys.stderr)


def measure_load_ms(arch: str, path: Path, in_shape: Shape, num_classes: int, device: str,
                    reps: int = 5, sha256: str | None = None) -> float:
    """Median ms to load ``path`` (checking its ``sha256``, as serving does) into a fresh
    ``arch`` model and move it to ``device``."""
    dev = check_device(device)
    times = []
    for _ in range(reps):
        with torch.random.fork_rng(devices=[]):
            model = build_model(arch, in_shape, num_classes)
        _sync(dev)
        t0 = time.perf_counter_ns()
        load_weights(model, path, device, sha256=sha256)
        _sync(dev)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return _sig(float(np.median(times)))
