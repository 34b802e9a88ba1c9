"""Tests for PSNR / SSIM (Y channel, [0, 255] scale, valid Gaussian SSIM)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from csnln.metrics import psnr, rgb_to_y, ssim, to_tensor

# --------------------------------------------------------------------------------------
# Independent SSIM reference: full 11x11 window via sliding windows (no separability)
# --------------------------------------------------------------------------------------


def _ref_ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()
    win = np.outer(g, g)

    def filt(t):
        v = np.lib.stride_tricks.sliding_window_view(t, (11, 11))
        return np.einsum("ijkl,kl->ij", v, win)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = filt(a), filt(b)
    s1 = filt(a * a) - mu1**2
    s2 = filt(b * b) - mu2**2
    s12 = filt(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return float(m.mean())


def _ref_y(rgb255: np.ndarray) -> np.ndarray:  # (3, H, W) on [0, 255]
    return 16.0 + (65.481 * rgb255[0] + 128.553 * rgb255[1] + 24.966 * rgb255[2]) / 255.0


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 256, (3, 24, 20), generator=g, dtype=torch.uint8)
    noise = torch.randint(-12, 13, (3, 24, 20), generator=g)
    sr = (hr.to(torch.int64) + noise).clamp(0, 255).to(torch.uint8)
    return sr, hr


# --------------------------------------------------------------------------------------
# rgb_to_y / to_tensor
# --------------------------------------------------------------------------------------


def test_rgb_to_y_known_values():
    rgb = torch.tensor([[0, 255, 0, 0], [0, 255, 0, 0], [0, 255, 255, 0]], dtype=torch.uint8)
    rgb = rgb.reshape(3, 1, 4)
    rgb[0, 0, 3] = 255  # pure red at the last pixel
    y = rgb_to_y(rgb)
    assert y.shape == (1, 1, 4)
    assert y.dtype == torch.float64
    assert y.flatten().tolist() == pytest.approx([16.0, 235.0, 16 + 24.966, 16 + 65.481])
    # float input in [0, 1] gives the same
    assert torch.allclose(rgb_to_y(rgb.double() / 255), y, rtol=0, atol=1e-12)
    assert torch.allclose(rgb_to_y(rgb.double(), data_range=255.0), y, rtol=0, atol=1e-12)


def test_rgb_to_y_batched_and_numpy():
    x = torch.randint(0, 256, (2, 3, 5, 6), dtype=torch.uint8)
    y = rgb_to_y(x)
    assert y.shape == (2, 1, 5, 6)
    np.testing.assert_allclose(y[1, 0].numpy(), _ref_y(x[1].double().numpy()), atol=1e-12)
    hwc = x[0].permute(1, 2, 0).numpy()
    assert torch.equal(rgb_to_y(hwc), y[0])
    with pytest.raises(ValueError):
        rgb_to_y(torch.rand(4, 5, 6))


def test_to_tensor():
    hwc = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    t = to_tensor(hwc)
    assert t.shape == (3, 2, 3) and t.dtype == torch.uint8
    assert t[1, 1, 2] == hwc[1, 2, 1]
    assert to_tensor(np.zeros((4, 5), np.uint8)).shape == (1, 4, 5)
    x = torch.rand(3, 4, 5)
    assert to_tensor(x) is x


# --------------------------------------------------------------------------------------
# PSNR
# --------------------------------------------------------------------------------------


def test_psnr_identical_is_inf(pair):
    _, hr = pair
    assert psnr(hr, hr) == math.inf
    assert ssim(hr, hr) == 1.0


def test_psnr_grey_offset_one_level():
    # 1-channel: Y is the channel itself; a difference of exactly 1/255 (one grey level)
    # gives MSE = 1 on the [0, 255] scale -> PSNR = 20 log10(255) = 48.1308036...
    hr = torch.rand(1, 16, 16, dtype=torch.float64) * 0.5
    sr = hr + 1 / 255
    assert psnr(sr, hr) == pytest.approx(20 * math.log10(255), abs=1e-9)
    assert 20 * math.log10(255) == pytest.approx(48.13080360867910)


def test_psnr_rgb_offset_on_y():
    # Adding c levels to R, G and B changes Y by c * 219 / 255 (65.481+128.553+24.966 = 219)
    hr = torch.randint(20, 200, (3, 10, 12), dtype=torch.uint8)
    sr = hr + 5
    dy = 5 * 219 / 255
    assert psnr(sr, hr) == pytest.approx(10 * math.log10(255**2 / dy**2), abs=1e-9)
    # on RGB the MSE is 25
    assert psnr(sr, hr, y_channel=False) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-9)


def test_psnr_crop_ignores_border():
    hr = torch.rand(1, 3, 20, 20, dtype=torch.float64)
    sr = hr.clone()
    sr[..., :2, :] = 0
    sr[..., :, -2:] = 1
    assert math.isfinite(psnr(sr, hr, crop=1)[0].item())
    assert psnr(sr, hr, crop=2)[0].item() == math.inf
    # crop=3 keeps the central 14x14 region
    sr2 = hr.clone()
    sr2[..., 3:-3, 3:-3] += 2 / 255
    assert psnr(sr2, hr, crop=3, y_channel=False)[0].item() == pytest.approx(
        20 * math.log10(255 / 2), abs=1e-9
    )


def test_psnr_matches_manual_formula(pair):
    sr, hr = pair
    ya, yb = _ref_y(sr.double().numpy()), _ref_y(hr.double().numpy())
    mse = np.mean((ya[4:-4, 4:-4] - yb[4:-4, 4:-4]) ** 2)
    assert psnr(sr, hr, crop=4) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-10)


# --------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------


def test_ssim_constant_images_by_hand():
    # constant images: sigmas are 0, SSIM = (2 a b + C1) / (a^2 + b^2 + C1)
    a = torch.full((1, 15, 13), 100 / 255, dtype=torch.float64)
    b = torch.full((1, 15, 13), 110 / 255, dtype=torch.float64)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-12)


def test_ssim_matches_full_window_reference(pair):
    sr, hr = pair
    ya, yb = _ref_y(sr.double().numpy()), _ref_y(hr.double().numpy())
    assert ssim(sr, hr) == pytest.approx(_ref_ssim_2d(ya, yb), abs=1e-12)
    assert ssim(sr, hr, crop=3) == pytest.approx(
        _ref_ssim_2d(ya[3:-3, 3:-3], yb[3:-3, 3:-3]), abs=1e-12
    )
    per_channel = [_ref_ssim_2d(sr[c].double().numpy(), hr[c].double().numpy()) for c in range(3)]
    assert ssim(sr, hr, y_channel=False) == pytest.approx(np.mean(per_channel), abs=1e-12)


def test_ssim_symmetric_and_bounded(pair):
    sr, hr = pair
    s1, s2 = ssim(sr, hr), ssim(hr, sr)
    assert s1 == pytest.approx(s2, abs=1e-14)
    assert -1.0 <= s1 < 1.0


def test_ssim_too_small():
    with pytest.raises(ValueError):
        ssim(torch.rand(1, 12, 12), torch.rand(1, 12, 12), crop=1)


# --------------------------------------------------------------------------------------
# dtypes, layouts, batches
# --------------------------------------------------------------------------------------


def test_uint8_float_and_numpy_agree(pair):
    sr, hr = pair
    srf, hrf = sr.double() / 255, hr.double() / 255
    for metric in (psnr, ssim):
        ref = metric(sr, hr, crop=2)
        assert isinstance(ref, float)
        assert metric(srf, hrf, crop=2) == pytest.approx(ref, abs=1e-10)
        assert metric(srf.float(), hrf.float(), crop=2) == pytest.approx(ref, abs=1e-4)
        assert metric(sr.double(), hr.double(), crop=2, data_range=255.0) == pytest.approx(
            ref, abs=1e-10
        )
        np_sr, np_hr = sr.permute(1, 2, 0).numpy(), hr.permute(1, 2, 0).numpy()
        assert metric(np_sr, np_hr, crop=2) == ref


def test_batch_matches_single(pair):
    sr, hr = pair
    g = torch.Generator().manual_seed(1)
    sr_b = torch.stack([sr, hr, torch.randint(0, 256, sr.shape, generator=g, dtype=torch.uint8)])
    hr_b = torch.stack([hr, hr, hr])
    for metric in (psnr, ssim):
        vals = metric(sr_b, hr_b, crop=2)
        assert isinstance(vals, torch.Tensor) and vals.shape == (3,)
        for n in range(3):
            assert vals[n].item() == pytest.approx(metric(sr_b[n], hr_b[n], crop=2), abs=1e-12)
    assert psnr(sr_b, hr_b)[1].item() == math.inf
    assert ssim(sr_b, hr_b)[1].item() == 1.0


def test_greyscale_uses_channel_itself():
    hr = torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8)
    sr = torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8)
    assert psnr(sr, hr) == psnr(sr, hr, y_channel=False)
    assert ssim(sr, hr) == ssim(sr, hr, y_channel=False)
    # a grey RGB image is NOT the same as its 1-channel version (Y = 16 + 219/255 * v)
    assert psnr(sr.repeat(3, 1, 1), hr.repeat(3, 1, 1)) != psnr(sr, hr)


def test_shape_mismatch():
    with pytest.raises(ValueError):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 9))
