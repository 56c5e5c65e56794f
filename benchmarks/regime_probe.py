"""Is a zoo in the paper's regime? (issue 14: front models that disagree, a medium one that can
be extracted.)

Offline, without the simulator, for one candidate zoo on MNIST-1D:

1. each model's test accuracy and the Pareto front (a shipped profile's, by batch-1 latency;
   or, for ``--archs``, the listed order, assumed fastest first, kept where accuracy rises);
2. the disagreement of neighbouring front models on the test split (percent of test inputs
   whose top-1 labels differ): being served a neighbour costs the attacker something only if
   this is large (>= 10 % asked);
3. the oracle attacker's surrogate fidelity (top-1 agreement with the target on the test split,
   percent) at each budget: the surrogate (``attacks.extraction.train_surrogate``, the project's
   own training) learns the target's probabilities on the first ``budget`` inputs of the pool
   (>= 90 % asked for the medium front model).

    python benchmarks/regime_probe.py --zoo mnist1d-cpu [--pool mnist1d-large-attacker]
        [--budgets 1000 2000 5000 10000] [--surrogate cnn1d_25] [--epochs 30 | --steps N]
        [--targets median | front | NAME ...] [--seed 1] [--json out.json]
    python benchmarks/regime_probe.py --archs cnn1d_4,cnn1d_8,cnn1d_25 ...   # an unbuilt zoo

``--archs`` trains each architecture with the zoo's own recipe (``zoo_profiles.train``, seed
``--zoo-seed``) on the mnist1d train split, as ``zoosim zoo build`` would; ``--surrogate same``
gives each target a surrogate of its own architecture. Prints the three tables and the wall
time of each stage; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attacks.extraction import evaluate_surrogate, train_surrogate
from attacks.victim import VictimZoo, softmax
from sim.output import json_text
from zoo_profiles.datasets import load_dataset, load_pool
from zoo_profiles.train import (
    accuracy,
    init_model,
    predict_logits,
    recipe_for,
    train_model,
)


@dataclass
class Member:
    """A zoo model: its name, its architecture, its eval-mode module and its test accuracy."""

    name: str
    arch: str
    module: torch.nn.Module
    accuracy: float


def from_profile(name: str) -> tuple[list[Member], list[int], str, int]:
    """The models of a shipped profile, the indices of its front, its dataset and split seed."""
    zoo = VictimZoo(name)
    meta = zoo.profile.metadata
    members = [Member(m.name, m.arch, zoo.module(i), m.accuracy)
               for i, m in enumerate(zoo.profile.models)]
    front = [zoo.index(m.name) for m in zoo.profile.pareto_front]
    return members, front, meta.dataset or "mnist5k", meta.split_seed


def from_archs(archs: list[str], dataset: str, seed: int,
               cache: Path | None = None) -> tuple[list[Member], list[int]]:
    """``archs`` trained with the dataset's recipe; front: listed order where accuracy rises.

    With ``cache``, trained weights are kept there (``<dataset>-<arch>-<seed>.safetensors``)
    and read back on the next run instead of training again."""
    from safetensors.torch import load_file, save_file

    ds = load_dataset(dataset)
    recipe = recipe_for(dataset)
    members = []
    for arch in archs:
        t = time.perf_counter()
        model = init_model(arch, ds.in_shape, ds.num_classes, seed)
        path = cache / f"{dataset}-{arch}-{seed}.safetensors" if cache else None
        if path is not None and path.exists():
            model.load_state_dict(load_file(str(path)))
        else:
            train_model(model, ds.train, arch=arch, seed=seed, epochs=recipe.epochs,
                        lr=recipe.lr, batch_size=recipe.batch_size)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        model.eval()
        members.append(Member(arch, arch, model, accuracy(model, ds.test)))
        print(f"  trained {arch}: {members[-1].accuracy:.2f} % "
              f"({time.perf_counter() - t:.1f} s)", flush=True)
    front: list[int] = []
    for i, m in enumerate(members):
        if not front or m.accuracy > members[front[-1]].accuracy:
            front.append(i)
    return members, front


def pick_targets(spec: list[str], members: list[Member], front: list[int]) -> list[int]:
    """``median`` (the attack's medium target), ``front`` (every front model) or names."""
    out: list[int] = []
    for s in spec:
        if s == "median":
            out.append(front[len(front) // 2])
        elif s == "front":
            out.extend(front)
        else:
            out.append([m.name for m in members].index(s))
    return list(dict.fromkeys(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--zoo", help="a shipped zoo profile (e.g. mnist1d-cpu)")
    src.add_argument("--archs", help="comma-separated architectures, trained here, fastest first")
    ap.add_argument("--dataset", default="mnist1d", help="with --archs")
    ap.add_argument("--zoo-seed", type=int, default=0, help="with --archs: training seed")
    ap.add_argument("--cache", type=Path, help="with --archs: keep trained weights here")
    ap.add_argument("--pool", default="mnist1d-large-attacker")
    ap.add_argument("--budgets", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    ap.add_argument("--surrogate", default="cnn1d_25", help="an arch, or 'same' (the target's)")
    length = ap.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimiser steps at every budget")
    length.add_argument("--epochs", type=int, default=30, help="passes over the answers")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--targets", nargs="+", default=["median"])
    ap.add_argument("--seed", type=int, default=1, help="the surrogate's seed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    walls: dict[str, float] = {}

    t = time.perf_counter()
    if args.zoo:
        members, front, dataset, split_seed = from_profile(args.zoo)
    else:
        dataset, split_seed = args.dataset, 0
        members, front = from_archs(args.archs.split(","), dataset, args.zoo_seed, args.cache)
    walls["zoo"] = time.perf_counter() - t
    test = load_dataset(dataset, split_seed=split_seed).test
    t = time.perf_counter()
    pool = load_pool(args.pool, split_seed=split_seed)
    walls["pool"] = time.perf_counter() - t
    if max(args.budgets) > len(pool):
        ap.error(f"budget {max(args.budgets)} exceeds the pool's {len(pool)} inputs")

    preds = [predict_logits(m.module, test.x).argmax(axis=1) for m in members]
    print(f"zoo: {args.zoo or args.archs}; pool {args.pool} ({len(pool)}); test {len(test)}")
    print(f"{'model':>12} {'accuracy':>9} front")
    for i, m in enumerate(members):
        print(f"{m.name:>12} {m.accuracy:>9.2f} {'*' if i in front else ''}")
    names = [members[i].name for i in front]
    dis = np.array([[100.0 * float((preds[i] != preds[j]).mean()) for j in front]
                    for i in front])
    print("disagreement on the test split, front models (percent):")
    print(" " * 12 + "".join(f"{n:>11}" for n in names))
    for n, row in zip(names, dis, strict=True):
        print(f"{n:>12}" + "".join(f"{v:>11.2f}" for v in row))
    neighbours = [round(float(dis[k, k + 1]), 2) for k in range(len(front) - 1)]
    print(f"neighbours: {neighbours} (min {min(neighbours, default=float('nan')):.2f})")

    rows: list[dict[str, Any]] = []
    for target in pick_targets(args.targets, members, front):
        tm = members[target]
        arch = tm.arch if args.surrogate == "same" else args.surrogate
        answers = softmax(predict_logits(tm.module, pool.x[:max(args.budgets)]))
        for budget in args.budgets:
            t = time.perf_counter()
            steps = args.steps or args.epochs * -(-budget // args.batch_size)
            sur = train_surrogate(pool.x[:budget], answers[:budget], kind="probabilities",
                                  arch=arch, steps=steps, seed=args.seed,
                                  batch_size=args.batch_size, lr=args.lr)
            score = evaluate_surrogate(sur, test, preds[target])
            wall = time.perf_counter() - t
            rows.append({"target": tm.name, "target_accuracy": tm.accuracy, "surrogate": arch,
                         "budget": budget, "steps": steps, **score, "wall_s": round(wall, 1)})
            print(f"target {tm.name:>10} ({tm.accuracy:.2f} %) surrogate {arch:>9} "
                  f"budget {budget:>6} steps {steps:>6}: fidelity {score['fidelity']:6.2f} "
                  f"accuracy {score['accuracy']:6.2f} ({wall:.1f} s)", flush=True)
    walls["total"] = time.perf_counter() - started
    print("wall s: " + ", ".join(f"{k} {v:.1f}" for k, v in walls.items()))
    if args.json:
        args.json.write_text(json_text({
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                     if k != "json"},
            "models": [{"name": m.name, "arch": m.arch, "accuracy": m.accuracy,
                        "front": i in front} for i, m in enumerate(members)],
            "front": names, "disagreement": dis.round(2).tolist(), "neighbours": neighbours,
            "fidelity": rows, "wall_s": {k: round(v, 1) for k, v in walls.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
