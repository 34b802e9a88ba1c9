"""Tests for the MATLAB-exact bicubic imresize."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from csnln.data.imresize import contributions, imresize, modcrop

# --------------------------------------------------------------------------------------
# Independent reference: a plain scalar-loop transcription of MATLAB's imresize.m
# (bicubic, antialiasing) -- no vectorisation, 1-based indices as in MATLAB.
# --------------------------------------------------------------------------------------


def _ref_cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _ref_contributions(in_len: int, out_len: int, scale: float, antialias: bool = True):
    width = 4.0
    if scale < 1 and antialias:
        width = width / scale

        def h(t):
            return scale * _ref_cubic(scale * t)
    else:
        h = _ref_cubic
    p = math.ceil(width) + 2
    aux = list(range(1, in_len + 1)) + list(range(in_len, 0, -1))
    weights, indices = [], []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        idx = [left + k for k in range(p)]
        w = [h(u - j) for j in idx]
        total = sum(w)
        weights.append([wi / total for wi in w])
        indices.append([aux[(j - 1) % len(aux)] for j in idx])  # 1-based
    # drop all-zero columns
    keep = [k for k in range(p) if any(weights[i][k] != 0 for i in range(out_len))]
    weights = [[row[k] for k in keep] for row in weights]
    indices = [[row[k] for k in keep] for row in indices]
    return weights, indices


def _ref_resize_dim(a: np.ndarray, axis: int, weights, indices) -> np.ndarray:
    a = np.moveaxis(a, axis, 0)
    out = np.zeros((len(weights),) + a.shape[1:], dtype=np.float64)
    for i, (w, idx) in enumerate(zip(weights, indices, strict=True)):
        acc = np.zeros(a.shape[1:], dtype=np.float64)
        for wk, jk in zip(w, idx, strict=True):
            acc = acc + wk * a[jk - 1]
        out[i] = acc
    return np.moveaxis(out, 0, axis)


def ref_imresize(a: np.ndarray, scale: float | None = None, size=None) -> np.ndarray:
    """MATLAB imresize(A, scale) / imresize(A, [r c]) on a 2-D float64 array."""
    a = np.asarray(a, dtype=np.float64)
    if scale is not None:
        scales = [scale, scale]
        out = [math.ceil(scale * a.shape[0]), math.ceil(scale * a.shape[1])]
    else:
        out = list(size)
        scales = [out[0] / a.shape[0], out[1] / a.shape[1]]
    order = [0, 1] if scales[0] <= scales[1] else [1, 0]
    for d in order:
        w, idx = _ref_contributions(a.shape[d], out[d], scales[d])
        a = _ref_resize_dim(a, d, w, idx)
    return a


SCALES = [1 / 2, 1 / 3, 1 / 4, 2, 3, 4]


# --------------------------------------------------------------------------------------
# Reference agreement
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 9), (12, 12)])
@pytest.mark.parametrize("scale", SCALES)
def test_matches_loop_reference(shape, scale):
    rng = np.random.default_rng(hash((shape, scale)) % 2**32)
    a = rng.uniform(0, 255, size=shape)
    expected = ref_imresize(a, scale)
    got = imresize(torch.from_numpy(a), scale).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("size", [(5, 4), (3, 20), (14, 6), (7, 9)])
def test_explicit_size_matches_reference(size):
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, size=(7, 9))
    expected = ref_imresize(a, size=size)
    got = imresize(torch.from_numpy(a), size=size).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_contributions_match_reference():
    for in_len, out_len, scale in [(12, 4, 1 / 3), (9, 18, 2.0), (13, 5, 1 / 3), (5, 20, 4.0)]:
        w_ref, i_ref = _ref_contributions(in_len, out_len, scale)
        w, i = contributions(in_len, out_len, scale)
        np.testing.assert_allclose(w.numpy(), np.array(w_ref), rtol=0, atol=1e-15)
        np.testing.assert_array_equal(i.numpy() + 1, np.array(i_ref))


# --------------------------------------------------------------------------------------
# Hand-computed values
# --------------------------------------------------------------------------------------


def test_upsample_x2_weights_by_hand():
    # x2 upsampling: output sample centres fall at offsets 0.25 / 0.75 from input samples.
    # cubic(0.25) = 0.8671875, cubic(0.75) = 0.2265625, cubic(1.25) = -0.0703125,
    # cubic(1.75) = -0.0234375 (a = -0.5).
    w, _ = contributions(4, 8, 2.0)
    row = sorted(w[3].tolist())  # an interior output
    assert row == pytest.approx([-0.0703125, -0.0234375, 0.2265625, 0.8671875], abs=1e-15)
    # 1-D [0, 1] -> 4 samples, mirror borders [.., 1, 0 | 0, 1 | 1, 0, ..]:
    #   out[0] = -0.0234375 * 1 + 0.2265625 * 0 + 0.8671875 * 0 - 0.0703125 * 1 = -0.09375
    #   out[1] = -0.0703125 * 0 + 0.8671875 * 0 + 0.2265625 * 1 - 0.0234375 * 1 = 0.203125
    x = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    y = imresize(x, size=(1, 4))
    expected = [-0.09375, 0.203125, 0.796875, 1.09375]
    assert y[0].tolist() == pytest.approx(expected, abs=1e-15)


def test_downsample_half_by_hand():
    # x1/2 with antialiasing: kernel h(t) = 0.5 * cubic(0.5 t), width 8; output j (1-based)
    # is centred at u = 2j - 0.5, so the taps sit at distances 0.5, 1.5, 2.5, 3.5 on each
    # side: weights 0.5 * cubic(0.25, 0.75, 1.25, 1.75) -> normalised (sum is 1 already).
    w, _ = contributions(8, 4, 0.5)
    expected = sorted(
        [0.43359375, 0.11328125, -0.03515625, -0.01171875] * 2
    )  # 0.5 * [0.8671875, 0.2265625, -0.0703125, -0.0234375]
    assert sorted(w[1].tolist()) == pytest.approx(expected, abs=1e-15)
    # a linear ramp is reproduced exactly away from the borders
    x = torch.arange(16, dtype=torch.float64).reshape(1, 16)
    y = imresize(x, size=(1, 8))
    assert y[0, 2:6].tolist() == pytest.approx([4.5, 6.5, 8.5, 10.5], abs=1e-12)


def test_uint8_4x4_half():
    a = np.arange(16, dtype=np.uint8).reshape(4, 4)
    y = imresize(torch.from_numpy(a), 0.5)
    assert y.dtype == torch.float64
    expected = ref_imresize(a.astype(np.float64), 0.5)
    np.testing.assert_allclose(y.numpy(), expected, rtol=0, atol=1e-12)
    # By hand: the image is 4 r + c, and the 1-D resize of the ramp [0, 1, 2, 3] gives
    # (weights 0.5 * cubic(0.25, 0.75, 1.25, 1.75) at distances 0.5 .. 3.5 on each side of
    # u = 1.5, positions 0, -1, -2, 5 mirrored to values 0, 1, 2, 3):
    #   0.43359375 (0 + 1) + 0.11328125 (0 + 2) - 0.03515625 (1 + 3) - 0.01171875 (2 + 3)
    #   = 0.4609375, and 3 - 0.4609375 = 2.5390625 for the second sample; so
    #   y = 4 R + C with R, C in {0.4609375, 2.5390625}.
    np.testing.assert_allclose(
        y.numpy(), [[2.3046875, 4.3828125], [10.6171875, 12.6953125]], rtol=0, atol=1e-12
    )


# --------------------------------------------------------------------------------------
# Identities and properties
# --------------------------------------------------------------------------------------


def test_scale_one_is_identity():
    x = torch.rand(2, 3, 7, 9, dtype=torch.float64)
    assert torch.equal(imresize(x, 1.0), x)
    assert torch.equal(imresize(x, size=(7, 9)), x)


@pytest.mark.parametrize("scale", SCALES + [0.3, 1.7])
def test_constant_stays_constant(scale):
    x = torch.full((1, 2, 11, 8), 0.3725, dtype=torch.float64)
    y = imresize(x, scale)
    assert torch.allclose(y, torch.full_like(y, 0.3725), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "hw,scale,out",
    [
        ((13, 13), 1 / 3, (5, 5)),
        ((12, 12), 1 / 3, (4, 4)),
        ((7, 9), 1 / 2, (4, 5)),
        ((7, 9), 1 / 4, (2, 3)),
        ((7, 9), 3, (21, 27)),
        ((5, 6), 0.3, (2, 2)),
    ],
)
def test_output_size(hw, scale, out):
    assert tuple(imresize(torch.rand(*hw, dtype=torch.float64), scale).shape) == out


def test_leading_dims_and_batch_invariance():
    x = torch.rand(4, 3, 12, 10, dtype=torch.float64)
    for scale in (1 / 3, 2):
        y = imresize(x, scale)
        assert y.shape[:2] == (4, 3)
        for n in range(4):
            assert torch.equal(imresize(x[n], scale), y[n])
            assert torch.equal(imresize(x[n : n + 1], scale), y[n : n + 1])
        assert torch.equal(imresize(x[1, 2], scale), y[1, 2])


def test_float32_matches_float64():
    x = torch.rand(2, 3, 12, 12, dtype=torch.float64)
    for scale in SCALES:
        y64 = imresize(x, scale)
        y32 = imresize(x.float(), scale)
        assert y32.dtype == torch.float32
        assert torch.allclose(y32.double(), y64, rtol=0, atol=1e-5)


def test_uint8_matches_float64():
    x = torch.randint(0, 256, (3, 9, 7), dtype=torch.uint8)
    y = imresize(x, 1 / 3)
    assert y.dtype == torch.float64
    assert torch.equal(y, imresize(x.double(), 1 / 3))


def test_nonsquare_order_smaller_scale_first():
    # explicit size with different per-dim scales (rows shrink while columns grow, and
    # vice versa). The two 1-D passes commute in exact arithmetic, so this checks the
    # per-dimension scales/weights; the order only matters at rounding level.
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, size=(12, 6))
    for size in [(4, 12), (24, 3)]:
        np.testing.assert_allclose(
            imresize(torch.from_numpy(a), size=size).numpy(),
            ref_imresize(a, size=size),
            rtol=0,
            atol=1e-12,
        )


def test_argument_errors():
    x = torch.rand(4, 4)
    with pytest.raises(ValueError):
        imresize(x)
    with pytest.raises(ValueError):
        imresize(x, 2, size=(8, 8))
    with pytest.raises(ValueError):
        imresize(x, -1.0)
    with pytest.raises(TypeError):
        imresize(torch.ones(4, 4, dtype=torch.int32), 2)


def test_modcrop_and_downscale():
    x = torch.rand(2, 3, 13, 10, dtype=torch.float64)
    c = modcrop(x, 3)
    assert c.shape == (2, 3, 12, 9)
    assert torch.equal(c, x[..., :12, :9])
    assert modcrop(x, 1).shape == x.shape
    lr = imresize(c, 1 / 3)
    assert lr.shape == (2, 3, 4, 3)
