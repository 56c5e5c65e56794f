"""Published CIFAR-10/100 zoos: accuracy and latency figures from public sources, not measured.

The figures (25 CIFAR models each: ResNet-20..56, VGG-11..19-BN, MobileNetV2, ShuffleNetV2,
RepVGG, ViT, ConvNeXt) come from a CSV with columns ``model, top1_accuracy_pct, latency_ms``, in
the order and pairing of taehyeok-jang/ppml ``serve/model_profiles.py`` (Jan 2025, a follow-up
implementation of the PSML defense); the CNN accuracies are those of
chenyaofo/pytorch-cifar-models. The hardware is not stated (that repository's serving README
mentions NVIDIA A40 GPUs) and neither is the batch size of the latency figure, so each figure is
stored as batch size 1 with p50 = p99 = the figure, and no larger batch is profiled (the
simulator extrapolates). Parameter counts, memory and load times are not published: they are 0
here (the simulator then treats models as free to hold and load), and the metadata says so.
These profiles carry ``source: published`` and must never be presented as measured. The CSVs
live outside the repository; only the generated YAMLs ship.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

from sim.errors import UserError
from sim.profiles import PROFILE_DIR
from zoo_profiles.profile_io import write_profile

COLUMNS = ("model", "top1_accuracy_pct", "latency_ms")
CITATION = ("accuracies: chenyaofo/pytorch-cifar-models (the CNNs); latencies, and all figures "
            "in this pairing: taehyeok-jang/ppml serve/model_profiles.py (Jan 2025)")
HARDWARE = "unstated (A40 per the ppml README)"
LATENCY_NOTE = ("published inference latency, batch size unstated; stored as batch size 1 with "
                "p50 = p99 = the figure; larger batches are not profiled")
UNKNOWN_NOTE = ("params, memory_mb and load_ms are not published: 0 means unknown (models cost "
                "no memory and load instantly in the simulator)")


def read_published_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows ``{"model", "accuracy", "latency_ms"}`` of a published-figures CSV, validated."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"published zoo CSV {path} not found")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: missing column(s) {missing}; expected {list(COLUMNS)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                acc, lat = float(row["top1_accuracy_pct"]), float(row["latency_ms"])
            except (TypeError, ValueError):
                raise UserError(f"{path}:{line}: accuracy and latency must be numbers") from None
            if not (0 <= acc <= 100) or not (lat > 0 and math.isfinite(lat)):
                raise UserError(f"{path}:{line}: need 0 <= accuracy <= 100 and latency > 0, got "
                                f"{acc}, {lat}")
            rows.append({"model": row["model"].strip(), "accuracy": acc, "latency_ms": lat})
    if not rows:
        raise UserError(f"{path}: no rows")
    return rows


def dataset_of(path: Path) -> str:
    """``cifar10`` / ``cifar100`` from a file name like ``cifar10_zoo_published.csv``."""
    m = re.match(r"(cifar\d+)_", path.name)
    if not m:
        raise UserError(f"{path.name}: cannot tell the dataset from the file name (expected "
                        "cifar10_... or cifar100_...)")
    return m.group(1)


def build_published(csv_path: str | Path, out_dir: str | Path | None = None,
                    name: str | None = None) -> Path:
    """Write ``<dataset>-published.yaml`` from a published-figures CSV; returns its path."""
    csv_path = Path(csv_path).expanduser()
    rows = read_published_csv(csv_path)
    dataset = dataset_of(csv_path)
    name = name or f"{dataset}-published"
    models = [{"name": r["model"], "arch": r["model"], "params": 0, "accuracy": r["accuracy"],
               "latency_ms": {1: {"p50": r["latency_ms"], "p99": r["latency_ms"]}},
               "memory_mb": 0.0, "load_ms": 0.0} for r in rows]
    metadata = {
        "source": "published", "dataset": dataset, "citation": CITATION, "hardware": HARDWARE,
        "device": "unstated", "batch_sizes": [1], "latency_note": LATENCY_NOTE,
        "unknown_note": UNKNOWN_NOTE, "accuracy": "published test top-1 percent",
        "csv": csv_path.name,
    }
    out = Path(out_dir) if out_dir is not None else PROFILE_DIR
    path = out / f"{name}.yaml"
    write_profile(path, {"name": name, "metadata": metadata, "models": models})
    return path


def build_all_published(source: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Profiles from one CSV, or from every ``cifar*_zoo_published.csv`` in a folder."""
    source = Path(source).expanduser()
    paths = sorted(source.glob("cifar*_zoo_published.csv")) if source.is_dir() else [source]
    if not paths:
        raise UserError(f"{source}: no cifar*_zoo_published.csv files in this folder")
    return [build_published(p, out_dir) for p in paths]

