"""``zoosim zoo check``: a zoo's predictions on another device against the CPU's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from sim.errors import UserError
from sim.profiles import PROFILE_DIR, load_profile
from zoo_profiles import device_check
from zoo_profiles.cli import zoo
from zoo_profiles.device_check import (
    DeviceAgreement,
    _tf32_settings,
    agreement,
    compare_devices,
    tf32,
)

LABELS = np.array([0, 1, 1, 0])
CPU = np.array([[2.0, 1.0], [0.0, 3.0], [0.4, 0.6], [5.0, 0.0]])


def test_identical_logits_agree() -> None:
    row = agreement("m", CPU, CPU.copy(), LABELS)
    assert row.agrees and row.agreement == 1.0 and row.max_logit_diff == 0.0
    assert row.accuracy_cpu == row.accuracy_device == 100.0


def test_a_near_tie_that_flips_is_a_disagreement() -> None:
    device = CPU.copy()
    device[2] = [0.61, 0.6]        # the third input now gets label 0 (its true label is 1)
    row = agreement("m", CPU, device, LABELS)
    assert not row.agrees and row.agreement == 0.75
    assert row.accuracy_cpu == 100.0 and row.accuracy_device == 75.0
    assert row.max_logit_diff == pytest.approx(0.21)


def test_a_logit_change_that_keeps_every_label_still_agrees() -> None:
    row = agreement("m", CPU, CPU + 0.01, LABELS)
    assert row.agrees and row.max_logit_diff == pytest.approx(0.01)


def test_mismatched_logits_are_refused() -> None:
    with pytest.raises(ValueError, match="labels"):
        agreement("m", CPU, CPU[:3], LABELS)


def flags() -> list[object]:
    where, _ = _tf32_settings()
    return [getattr(owner, attr) for owner, attr in where]


@pytest.mark.parametrize("allowed", [True, False])
def test_tf32_on_or_off_sets_both_and_restores_them_after(allowed: bool) -> None:
    before = flags()
    _, (on, off) = _tf32_settings()
    with tf32(allowed):
        assert flags() == [on if allowed else off] * 2
    assert flags() == before


def test_tf32_default_keeps_torchs_settings() -> None:
    before = flags()
    with tf32(None):
        assert flags() == before


@pytest.mark.slow
def test_the_cpu_agrees_with_itself_at_the_profiled_accuracy() -> None:
    rows = compare_devices("mnist5k-cpu", "cpu")
    prof = load_profile("mnist5k-cpu")
    assert [r.model for r in rows] == [m.name for m in prof.models]
    assert all(r.agrees and r.max_logit_diff == 0.0 for r in rows)
    assert [r.accuracy_cpu for r in rows] == [m.accuracy for m in prof.models]


def test_a_zoo_without_weights_cannot_be_checked() -> None:
    with pytest.raises(UserError, match="only a measured zoo"):
        compare_devices("cifar10-published", "cpu")


def edited_copy(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """mnist5k-cpu's profile, edited, in ``tmp_path`` (its weights paths then lead nowhere:
    only checks made before any model loads can pass)."""
    data = yaml.safe_load((PROFILE_DIR / "mnist5k-cpu.yaml").read_text())
    edit(data)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_model_without_weights_is_named(tmp_path: Path) -> None:
    path = edited_copy(tmp_path, lambda d: d["models"][2].pop("weights"))
    with pytest.raises(UserError, match="mlp_large"):
        compare_devices(path, "cpu")


def test_another_split_than_the_zoos_is_refused(tmp_path: Path) -> None:
    def other(d: dict[str, Any]) -> None:
        d["metadata"]["split_digest"] = "0123456789abcdef"

    with pytest.raises(UserError, match="split_digest"):
        compare_devices(edited_copy(tmp_path, other), "cpu")


ROWS = {"agree": [DeviceAgreement("a", 90.0, 90.0, 1.0, 0.0)],
        "differ": [DeviceAgreement("a", 90.0, 90.0, 1.0, 0.0),
                   DeviceAgreement("b", 95.9, 95.95, 0.9995, 0.1)]}


@pytest.mark.parametrize(("rows", "code", "says"), [
    ("agree", 0, "1 of 1 models agree"),
    ("differ", 1, "1 of 2 models agree on every test input; differ: b"),
])
@pytest.mark.parametrize(("option", "allow"), [("default", None), ("on", True), ("off", False)])
def test_the_command_fails_when_a_model_disagrees(monkeypatch: pytest.MonkeyPatch, rows: str,
                                                  code: int, says: str, option: str,
                                                  allow: bool | None) -> None:
    seen: dict[str, Any] = {}

    def fake(name: str, device: str, **kw: Any) -> list[DeviceAgreement]:
        seen.update(kw, name=name, device=device)
        return ROWS[rows]

    monkeypatch.setattr(device_check, "compare_devices", fake)
    res = CliRunner().invoke(zoo, ["check", "mnist5k-cpu", "--device", "cpu", "--tf32", option])
    assert res.exit_code == code and says in res.output
    assert seen["allow_tf32"] is allow and seen["device"] == "cpu"


def test_an_unknown_device_is_a_usage_error() -> None:
    res = CliRunner().invoke(zoo, ["check", "mnist5k-cpu", "--device", "tpu"])
    assert res.exit_code == 2 and "--device" in res.output
