"""A straightforward, unchunked CSNLN: the authors' released computation, kept for reference.

This mirrors the authors' code path (per-image loop, score maps via ``conv2d`` with the key
patches as kernels, pasting via ``conv_transpose2d``, full in-scale score matrix, the tail over
the concatenation of all steps) with their module and key names, so their state dicts load
directly. It is used by the tests (as an independent second implementation) and by
``benchmarks/`` (as the "released code" side of side-by-side comparisons). It only accepts
sizes divisible by the attention factor, as the original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RGB_MEAN = (0.4488, 0.4371, 0.4040)


def _basic(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.PReLU())


def _same_patches(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """TensorFlow-style 'same' padding then unfold: N, C*k*k, L."""
    _, _, h, w = x.shape
    out_h, out_w = (h + stride - 1) // stride, (w + stride - 1) // stride
    pad_h = max(0, (out_h - 1) * stride + k - h)
    pad_w = max(0, (out_w - 1) * stride + k - w)
    top, left = pad_h // 2, pad_w // 2
    x = F.pad(x, (left, pad_w - left, top, pad_h - top))
    return F.unfold(x, k, stride=stride)


class CrossScaleAttention(nn.Module):
    def __init__(self, channel: int = 128, reduction: int = 2, ksize: int = 3, scale: int = 2):
        super().__init__()
        self.ksize, self.scale, self.softmax_scale = ksize, scale, 10
        self.register_buffer("escape_NaN", torch.FloatTensor([1e-4]))
        self.conv_match_1 = _basic(channel, channel // reduction, 1)
        self.conv_match_2 = _basic(channel, channel // reduction, 1)
        self.conv_assembly = _basic(channel, channel, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embed_w = self.conv_assembly(x)
        match_input = self.conv_match_1(x)
        n, c, h, w = embed_w.shape
        kernel = self.scale * self.ksize
        raw_w = _same_patches(embed_w, kernel, self.scale)
        raw_w = raw_w.view(n, c, kernel, kernel, -1).permute(0, 4, 1, 2, 3)
        ref = F.interpolate(x, scale_factor=1.0 / self.scale, mode="bilinear")
        ref = self.conv_match_2(ref)
        wk = _same_patches(ref, self.ksize, 1)
        wk = wk.view(n, ref.shape[1], self.ksize, self.ksize, -1).permute(0, 4, 1, 2, 3)
        out = []
        for xi, wi, raw_wi in zip(match_input.split(1), wk, raw_w, strict=True):
            norm = wi.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
            wi_normed = wi / torch.max(norm, self.escape_NaN)
            xi = F.pad(xi, (1, 1, 1, 1))
            yi = F.conv2d(xi, wi_normed, stride=1)
            yi = yi.view(1, ref.shape[2] * ref.shape[3], h, w)
            yi = F.softmax(yi * self.softmax_scale, dim=1)
            yi = F.conv_transpose2d(yi, raw_wi, stride=self.scale, padding=self.scale)
            out.append(yi / 6.0)
        return torch.cat(out, dim=0)


class NonLocalAttention(nn.Module):
    def __init__(self, channel: int = 128, reduction: int = 2):
        super().__init__()
        self.conv_match1 = _basic(channel, channel // reduction, 1)
        self.conv_match2 = _basic(channel, channel // reduction, 1)
        self.conv_assembly = _basic(channel, channel, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv_match1(x)
        b = self.conv_match2(x)
        v = self.conv_assembly(x)
        n, c, h, w = a.shape
        a = a.permute(0, 2, 3, 1).reshape(n, h * w, c)
        b = b.reshape(n, c, h * w)
        score = F.softmax(torch.matmul(a, b), dim=2)
        v = v.reshape(n, -1, h * w).permute(0, 2, 1)
        return torch.matmul(score, v).permute(0, 2, 1).reshape(n, -1, h, w)


class ResBlock(nn.Module):
    def __init__(self, n_feats: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.PReLU(),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


def _strided(n: int, k: int, s: int, p: int, transpose: bool) -> nn.Sequential:
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    return nn.Sequential(conv(n, n, k, stride=s, padding=p), nn.PReLU())


class MultisourceProjection(nn.Module):
    def __init__(self, n_feats: int, scale: int):
        super().__init__()
        k, s, p, up = {2: (6, 2, 2, 2), 3: (9, 3, 3, 3), 4: (6, 2, 2, 2)}[scale]
        self.up_attention = CrossScaleAttention(channel=n_feats, scale=up)
        self.down_attention = NonLocalAttention(channel=n_feats)
        self.upsample = _strided(n_feats, k, s, p, True)
        self.encoder = ResBlock(n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        down_map = self.upsample(self.down_attention(x))
        up_map = self.up_attention(x)
        return down_map + self.encoder(up_map - down_map)


class RecurrentProjection(nn.Module):
    def __init__(self, n_feats: int, scale: int):
        super().__init__()
        self.scale = scale
        k, s, p = {2: (6, 2, 2), 3: (9, 3, 3), 4: (6, 2, 2)}[scale]
        self.multi_source_projection = MultisourceProjection(n_feats, scale)
        self.down_sample_1 = _strided(n_feats, k, s, p, False)
        if scale != 4:
            self.down_sample_2 = _strided(n_feats, k, s, p, False)
        self.error_encode = _strided(n_feats, k, s, p, True)
        self.post_conv = _basic(n_feats, n_feats, 3)
        if scale == 4:
            self.multi_source_projection_2 = MultisourceProjection(n_feats, scale)
            self.down_sample_3 = _strided(n_feats, 8, 4, 2, False)
            self.down_sample_4 = _strided(n_feats, 8, 4, 2, False)
            self.error_encode_2 = _strided(n_feats, 8, 4, 2, True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_up = self.multi_source_projection(x)
        x_down = self.down_sample_1(x_up)
        h = x_up + self.error_encode(x - x_down)
        if self.scale == 4:
            x_up_2 = self.multi_source_projection_2(h)
            x_down_2 = self.down_sample_3(x_up_2)
            h = x_up_2 + self.error_encode_2(x - x_down_2)
            return self.post_conv(self.down_sample_4(h)), h
        return self.post_conv(self.down_sample_2(h)), h


class MeanShift(nn.Conv2d):
    def __init__(self, sign: int):
        super().__init__(3, 3, kernel_size=1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * torch.tensor(RGB_MEAN)
        for p in self.parameters():
            p.requires_grad = False


class ReferenceCSNLN(nn.Module):
    """The authors' CSNLN (their key names); ``n_feats`` is a parameter here."""

    def __init__(self, scale: int, n_feats: int = 128, depth: int = 12):
        super().__init__()
        self.depth = depth
        self.sub_mean = MeanShift(-1)
        self.head = nn.Sequential(_basic(3, n_feats, 3), _basic(n_feats, n_feats, 3))
        self.SEM = RecurrentProjection(n_feats, scale)
        self.tail = nn.Sequential(nn.Conv2d(n_feats * depth, 3, 3, padding=1))
        self.add_mean = MeanShift(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x))
        bag = []
        for _ in range(self.depth):
            x, h = self.SEM(x)
            bag.append(h)
        return self.add_mean(self.tail(torch.cat(bag, dim=1)))
