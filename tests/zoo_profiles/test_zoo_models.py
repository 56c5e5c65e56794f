"""The model registry: every family builds, maps images to class logits, and is seeded."""

from __future__ import annotations

import pytest
import torch

from sim.errors import UserError
from zoo_profiles.models import (
    ARCHS,
    ARCHS_1D,
    ARCHS_1D_EXTRA,
    ARCHS_2D,
    Conv1dNet,
    build_model,
    count_params,
    default_archs,
)
from zoo_profiles.train import init_model


def test_registry_has_the_zoo_families() -> None:
    assert len(ARCHS) >= 7
    assert {"logreg", "mlp_small", "mlp_large", "cnn_small", "cnn_wide", "lenet5",
            "resnet_small", "vgg_small"} <= set(ARCHS)


@pytest.mark.parametrize("arch", ARCHS_2D)
def test_forward_shape_mnist(arch: str) -> None:
    model = build_model(arch).eval()
    with torch.inference_mode():
        out = model(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ARCHS_2D)
def test_forward_shape_other_input(arch: str) -> None:
    model = build_model(arch, (3, 32, 32), 100).eval()
    with torch.inference_mode():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 100)


@pytest.mark.parametrize("arch", ARCHS_1D + ARCHS_1D_EXTRA)
def test_forward_shape_1d_signals(arch: str) -> None:
    model = build_model(arch, (1, 1, 40)).eval()
    with torch.inference_mode():
        assert model(torch.rand(5, 1, 1, 40)).shape == (5, 10)


def test_default_archs() -> None:
    assert default_archs((1, 28, 28)) == ARCHS_2D
    assert default_archs((1, 1, 40)) == ARCHS_1D
    assert set(ARCHS_1D) | set(ARCHS_2D) | set(ARCHS_1D_EXTRA) == set(ARCHS)
    assert not set(ARCHS_1D_EXTRA) & (set(ARCHS_1D) | set(ARCHS_2D))


def test_deep_1d_cnn_extends_the_three_conv_one() -> None:
    deep, base = build_model("cnn1d_64_deep", (1, 1, 40)), build_model("cnn1d_64", (1, 1, 40))
    assert count_params(deep) == 65354
    # the first three convs and the head keep cnn1d_64's names and shapes (length 5 after them)
    shapes = {k: v.shape for k, v in deep.state_dict().items()}
    assert all(shapes[k] == v.shape for k, v in base.state_dict().items())
    with pytest.raises(ValueError, match="layers"):
        Conv1dNet((1, 1, 40), 10, 8, layers=2)


def test_sizes_grow_from_logreg_to_vgg() -> None:
    params = {a: count_params(build_model(a)) for a in ARCHS_2D}
    assert params["logreg"] == 7850
    assert params["cnn_small"] == 9098  # docs/architecture.md, "Zoo profiles"
    assert params["vgg_small"] == max(params.values())


def test_unknown_arch_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown model architecture 'nope'"):
        build_model("nope")


def test_init_is_seeded_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a = init_model("lenet5", (1, 28, 28), 10, seed=3)
    b = init_model("lenet5", (1, 28, 28), 10, seed=3)
    c = init_model("lenet5", (1, 28, 28), 10, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in
                   zip(a.parameters(), c.parameters(), strict=True))
