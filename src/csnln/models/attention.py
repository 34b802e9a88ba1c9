"""The two non-local attentions of CSNLN, computed in query chunks.

Both attentions compare every position of a feature map with every other one, so a naive
implementation materialises a score matrix quadratic in the pixel count. Here the queries are
processed in chunks (``chunk_size``: a number of query positions, ``"auto"`` for as many as
keep a chunk's scores under :data:`AUTO_SCORE_ELEMENTS`, or ``None`` for all at once). Peak
memory then grows linearly with the pixel count, and the result is the same as unchunked.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvPReLU
from .windowed import GROUP_SCORE_ELEMENTS, AttentionWindow, blocks, crop_blocks, group_blocks

ChunkSize: TypeAlias = int | Literal["auto"] | None

#: Default chunking: as many queries per chunk as keep one chunk's score matrix at this many
#: elements (64 MB in float32), over the whole batch.
AUTO_SCORE_ELEMENTS = 2**24
DEFAULT_CHUNK_SIZE: ChunkSize = "auto"
#: Query positions per score block of ``attention_weights`` (the maps: one image, float64 sums).
MAP_QUERY_CHUNK = 256


def queries_per_chunk(chunk_size: ChunkSize, *, batch: int, queries: int, keys: int) -> int:
    """How many query positions one chunk holds: all (None), a fixed number, or "auto"."""
    if chunk_size is None:
        return queries
    if chunk_size == "auto":
        return max(1, min(queries, AUTO_SCORE_ELEMENTS // max(1, batch * keys)))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, 'auto' or None, got {chunk_size!r}")
    return min(queries, chunk_size)


class InScaleAttention(nn.Module):
    """Pixel-to-pixel non-local attention on the input grid (the paper's in-scale branch).

    ``score[i, j] = <query_i, key_j>`` (no scaling), softmax over ``j``, output
    ``sum_j softmax[i, j] * value_j``. Output has the shape of the input.
    """

    def __init__(
        self, channels: int, *, reduction: int = 2, chunk_size: ChunkSize = DEFAULT_CHUNK_SIZE
    ) -> None:
        super().__init__()
        self.query = ConvPReLU(channels, channels // reduction, 1)
        self.key = ConvPReLU(channels, channels // reduction, 1)
        self.value = ConvPReLU(channels, channels, 1)
        self.chunk_size = chunk_size
        #: Fused attention (``scaled_dot_product_attention``): None picks by device (see
        #: forward); True/False force it (tests compare the two on the CPU).
        self.fused: bool | None = None
        #: Export mode (``CSNLN.set_export_mode``): one chunk, no fused kernel, so that a
        #: traced graph holds no count of chunks that depends on the traced batch or size.
        self.export = False
        #: Windowed attention on this grid (:mod:`csnln.models.windowed`); None: whole.
        self.window: AttentionWindow | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.window is not None and not self.export and not self.window.covers(h, w):
            return self._windowed(x, self.window)
        query = self.query(x).flatten(2).transpose(1, 2)  # N, HW, C/2
        value = self.value(x).flatten(2).transpose(1, 2)  # N, HW, C
        fused = x.is_cuda if self.fused is None else self.fused
        if fused and not self.export:
            # The same softmax(Q K^T) V (no 1/sqrt(d): scale=1) in one kernel; on GPUs its
            # flash/memory-efficient kernels never write the HW x HW score matrix. Not by
            # default on the CPU, where PyTorch 2.13's SDPA measured slower than the chunked
            # bmm + softmax below (1.2x in fp32, 2.5x in bf16, 4k-16k queries).
            key = self.key(x).flatten(2).transpose(1, 2)  # N, HW, C/2
            out = F.scaled_dot_product_attention(
                query[:, None], key[:, None], value[:, None], scale=1.0
            )[:, 0]  # N, HW, C
            return out.transpose(1, 2).reshape(n, c, h, w)
        key = self.key(x).flatten(2)  # N, C/2, HW
        chunking = None if self.export else self.chunk_size
        chunk = queries_per_chunk(chunking, batch=n, queries=h * w, keys=h * w)
        # Inference with bounded scores: unnormalised weights, normalised on the output.
        bounded = (
            not self.export
            and not torch.is_grad_enabled()
            and _exp_is_safe(query, key, query.dtype)
        )
        attend = _attend_bounded if bounded else self._attend
        out = [
            attend(query[:, start : start + chunk], key, value) for start in range(0, h * w, chunk)
        ]
        out = out[0] if len(out) == 1 else torch.cat(out, dim=1)  # N, HW, C
        # A copy into the input's layout: a reshape would be a channels-last view, and every
        # later elementwise op mixing it with contiguous tensors (forward and backward) would
        # take a slow strided path (benchmarks/results/train_step_small.md, 2026-12-04 run).
        return out.transpose(1, 2).contiguous().view(n, c, h, w)

    def _windowed(self, x: torch.Tensor, window: AttentionWindow) -> torch.Tensor:
        """Each query block over the keys of its window: N, C, H, W."""
        query, key, value = self.query(x), self.key(x), self.value(x)
        n, c, h, w = value.shape
        by, bx, wh, ww, found = blocks(h, w, window)
        out = torch.empty_like(value)
        for group in group_blocks(found, max(1, GROUP_SCORE_ELEMENTS // (n * by * bx * wh * ww))):
            q = crop_blocks(query, group, by, bx, window=False).flatten(2).transpose(1, 2)
            k = crop_blocks(key, group, wh, ww, window=True).flatten(2)  # G N, C/2, wh ww
            v = crop_blocks(value, group, wh, ww, window=True).flatten(2).transpose(1, 2)
            o = torch.bmm(self._attention(q, k), v)  # G N, by bx, C
            o = o.transpose(1, 2).reshape(len(group), n, c, by, bx)
            for i, b in enumerate(group):
                out[:, :, b.y : b.y + by, b.x : b.x + bx] = o[i]
        return out

    @staticmethod
    def _attention(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """The weights: ``softmax_j <query_i, key_j>``, N, Q, C/2 by N, C/2, K -> N, Q, K."""
        return torch.softmax(torch.bmm(query, key), dim=-1)

    @classmethod
    def _attend(cls, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """``softmax(query key) value``: N, Q, C."""
        return torch.bmm(cls._attention(query, key), value)

    def attention_weights(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The weights of the query pixels ``positions`` (flat indices into H x W) of
        ``x`` (1, C, H, W) over the key pixels, averaged over the positions: H x W, float32
        (whole-image attention, as the maps show it)."""
        h, w = x.shape[-2:]
        query = self.query(x).flatten(2).transpose(1, 2)  # 1, HW, C/2
        key = self.key(x).flatten(2)  # 1, C/2, HW
        total = torch.zeros(h * w, dtype=torch.float64)
        for chunk in positions.split(MAP_QUERY_CHUNK):
            total += self._attention(query[:, chunk].float(), key.float())[0].double().sum(0)
        return (total / len(positions)).float().view(h, w)


#: Largest |score| whose exp, summed over any key count and times any value, stays finite in
#: float32 and bfloat16 (e^60 ~ 1e26), and whose exp(-score) stays a normal number.
_EXP_SAFE_SCORE = 60.0


def _exp_is_safe(query: torch.Tensor, key: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether every score ``<query_i, key_j>`` (N, Q, D by N, D, K) is bounded by
    :data:`_EXP_SAFE_SCORE` (Cauchy-Schwarz: ``|q_i| max_j |k_j|``), so that the softmax needs
    no max subtracted. Not in float16, whose exponent range is too small."""
    if dtype not in (torch.float32, torch.bfloat16):
        return False
    bound = query.float().norm(dim=-1).amax(dim=-1) * key.float().norm(dim=1).amax(dim=-1)
    return bool((bound < _EXP_SAFE_SCORE).all())


def _attend_bounded(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``softmax(query key) value`` for scores :func:`_exp_is_safe` bounds: the exponentials in
    place, the sums over the keys divided out of the N, Q, C output instead of the N, Q, K
    weights (one pass over the score matrix where the softmax makes three; the same result
    to float rounding)."""
    weights = torch.bmm(query, key).exp_()  # N, Q, K
    return torch.bmm(weights, value) / weights.sum(dim=-1, keepdim=True)


class CrossScaleAttention(nn.Module):
    """Cross-scale non-local attention: output ``factor`` times larger than the input.

    Every ``patch_size``-square patch of the queries (on the input grid, H x W) is matched
    against the normalised patches of the keys computed on the input downscaled by ``factor``
    (bilinear), and pastes the matching ``factor * patch_size``-square patches of the values
    (on the input grid) onto a ``factor`` times larger canvas, weighted by
    ``softmax(temperature * score)``. The canvas is divided by ``overlap_divisor``.

    Input height and width must be divisible by ``factor`` (the network pads to ensure it).
    """

    def __init__(
        self,
        channels: int,
        *,
        factor: int,
        reduction: int = 2,
        patch_size: int = 3,
        temperature: float = 10.0,
        overlap_divisor: float = 6.0,
        norm_floor: float = 1e-4,
        chunk_size: ChunkSize = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__()
        if patch_size % 2 != 1:
            raise ValueError(f"patch_size must be odd, got {patch_size}")
        self.query = ConvPReLU(channels, channels // reduction, 1)
        self.key = ConvPReLU(channels, channels // reduction, 1)
        self.value = ConvPReLU(channels, channels, 1)
        self.factor = factor
        self.patch_size = patch_size
        self.temperature = temperature
        self.overlap_divisor = overlap_divisor
        self.norm_floor = norm_floor
        self.chunk_size = chunk_size
        #: Layout of the scores' softmax over the keys: None picks by device (see forward).
        self.keys_last: bool | None = None
        #: Export mode (``CSNLN.set_export_mode``): one band of rows, and the paste's shift sum
        #: as padding and slices (no autograd.Function, no as_strided): what ONNX exporters
        #: trace into a graph that is right for every batch.
        self.export = False
        #: Windowed attention on this grid (:mod:`csnln.models.windowed`; sizes multiples of
        #: ``factor``); None: whole.
        self.window: AttentionWindow | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        u, p = self.factor, self.patch_size
        if h % u or w % u:
            raise ValueError(f"CrossScaleAttention needs H, W divisible by {u}, got {h}x{w}")
        if self.window is not None and not self.export and not self.window.covers(h, w):
            return self._windowed(x, self.window)
        half = p // 2
        pad = u * half  # canvas margin of a pasted patch around its query's u x u block

        value = self.value(x)  # N, C, H, W
        query = self.query(x)  # N, C/2, H, W
        key = self.patch_keys(x)  # N, C/2 p p, L
        # Values, rearranged so that the paste is one matmul: the u x u block of the input grid
        # under each small-grid position l, N, C u u, L (see `_shift_sum`).
        values = _space_to_depth(value, u).flatten(2)
        key_t = key.transpose(1, 2)  # N, L, C/2 p p

        # Queries, one band of rows at a time (with a halo of `half` rows for the patches).
        query = F.pad(query, (half, half, half, half))
        chunking = None if self.export else self.chunk_size
        rows = max(1, queries_per_chunk(chunking, batch=n, queries=h * w, keys=key.shape[-1]) // w)
        # The softmax over the keys. On a CPU with the keys on dim 1, the layout the paste
        # reads (the CPU softmax vectorises across the queries; computing it keys-last and
        # reading it transposed took up to 1.7x longer at LR 96x96 in an ad hoc timing). On a
        # GPU keys-last, read back as a transposed view: CUDA's softmax over a non-last dim is
        # a slow kernel (82% of one SEM step's time at x2, LR 256x192, H200:
        # benchmarks/results/gpu.md).
        keys_last = (x.is_cuda if self.keys_last is None else self.keys_last) and not self.export
        shift_sum = _shift_sum_slices if self.export else _shift_sum
        bands = []
        for top in range(0, h, rows):
            bottom = min(h, top + rows)
            band = _patches(query[:, :, top : bottom + 2 * half], p)  # N, C/2 p p, R W
            if keys_last:  # N, R W, L: softmax along contiguous memory, a view back
                attn = torch.softmax(torch.bmm(band.transpose(1, 2), key), dim=-1).transpose(1, 2)
            else:
                attn = self._attention(key_t, band)  # N, L, R W: over the keys
            attn = attn.view(n, h // u, w // u, bottom - top, w)
            paste = torch.bmm(values, shift_sum(attn, p).flatten(1, 2).flatten(2))
            # N, C u u, (R + p - 1)(W + p - 1) -> the band's canvas N, C, u(R + p - 1), u(W + p - 1)
            bands.append(_depth_to_space(paste.view(n, c * u * u, bottom - top + 2 * half, -1), u))
        if len(bands) == 1:
            canvas = bands[0]
        else:
            acc_dtype = torch.promote_types(bands[0].dtype, torch.float32)
            canvas = x.new_zeros(n, c, u * h + 2 * pad, u * w + 2 * pad, dtype=acc_dtype)
            top = 0
            for band in bands:
                canvas[:, :, u * top : u * top + band.shape[-2]] += band
                top += band.shape[-2] // u - 2 * half
        out = canvas[:, :, pad : pad + u * h, pad : pad + u * w] / self.overlap_divisor
        return out.to(value.dtype)

    def patch_keys(self, x: torch.Tensor) -> torch.Tensor:
        """The keys: p x p patches of the key map of ``x`` downscaled by ``factor``, each
        L2-normalised, temperature folded in: N, C/2 p p, L (L = H/u W/u, row-major)."""
        h, w = x.shape[-2:]
        u, p = self.factor, self.patch_size
        small = F.interpolate(x, size=(h // u, w // u), mode="bilinear", align_corners=False)
        return self._normalised(_patches(F.pad(self.key(small), (p // 2,) * 4), p))

    @staticmethod
    def _attention(key_t: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """The weights: softmax over the keys of ``<key_l, query patch_i>`` (the keys
        normalised, the temperature in them), N, L, C/2 p p by N, C/2 p p, Q -> N, L, Q."""
        return torch.softmax(torch.bmm(key_t, patches), dim=1)

    def attention_weights(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The weights of the query patches centred on ``positions`` (flat indices into
        H x W) of ``x`` (1, C, H, W) over the key patches, averaged over the positions:
        H/u x W/u, float32 (whole-image attention, as the maps show it)."""
        h, w = x.shape[-2:]
        p, u = self.patch_size, self.factor
        patches = _patches(F.pad(self.query(x), (p // 2,) * 4), p)  # 1, C/2 p p, HW
        key_t = self.patch_keys(x).transpose(1, 2).float()  # 1, L, C/2 p p
        total = torch.zeros(key_t.shape[1], dtype=torch.float64)
        for chunk in positions.split(MAP_QUERY_CHUNK):
            total += self._attention(key_t, patches[:, :, chunk].float())[0].double().sum(1)
        return (total / len(positions)).float().view(h // u, w // u)

    def _normalised(self, key: torch.Tensor) -> torch.Tensor:
        """Key patches (N, C/2 p p, L) L2-normalised, the temperature folded in."""
        return key / key.norm(dim=1, keepdim=True).clamp_min(self.norm_floor) * self.temperature

    def _windowed(self, x: torch.Tensor, window: AttentionWindow) -> torch.Tensor:
        """Each query block matched against the patches of its window's downscaled keys,
        pasting that window's values onto one canvas: N, C, uH, uW.

        The same as the whole-image attention with each query's softmax confined to its
        window's keys: a key patch at the window's edge is cut from the whole key map (its
        neighbours outside the window included), and it pastes its whole ``u p`` value patch
        (the values cropped with a margin of ``u * half``)."""
        n, c, h, w = x.shape
        u, p = self.factor, self.patch_size
        half = p // 2
        pad = u * half
        value = F.pad(self.value(x), (pad,) * 4)  # zero outside the image, as the whole paste
        query = F.pad(self.query(x), (half,) * 4)
        small = F.interpolate(x, size=(h // u, w // u), mode="bilinear", align_corners=False)
        key_small = F.pad(self.key(small), (half,) * 4)  # N, C/2, H/u + 2 half, W/u + 2 half
        by, bx, wh, ww, found = blocks(h, w, window)
        ly, lx = wh // u, ww // u
        acc = torch.promote_types(x.dtype, torch.float32)
        canvas = x.new_zeros(n, c, u * h + 2 * pad, u * w + 2 * pad, dtype=acc)
        for group in group_blocks(found, max(1, GROUP_SCORE_ELEMENTS // (n * by * bx * ly * lx))):
            g = len(group)
            small_windows = crop_blocks(
                key_small, group, ly + 2 * half, lx + 2 * half, window=True, u=u
            )
            key = self._normalised(_patches(small_windows, p))  # G N, C/2 p p, ly lx
            windows = crop_blocks(value, group, wh + 2 * pad, ww + 2 * pad, window=True)
            values = _space_to_depth(windows, u)  # G N, C u u, ly + 2 half, lx + 2 half
            queries = crop_blocks(query, group, by + 2 * half, bx + 2 * half, window=False)
            band = _patches(queries, p)  # G N, C/2 p p, by bx
            attn = self._attention(key.transpose(1, 2), band)  # G N, ly lx, by bx
            attn = attn.view(g, n, ly, lx, by, bx)
            if any(b.own_y or b.own_x for b in group):
                # Queries an earlier (overlapping) block pasted; a mask, not an in-place
                # write, so that the softmax's output stays intact for its backward pass.
                keep = attn.new_ones(g, 1, 1, 1, by, bx)
                for i, b in enumerate(group):
                    keep[i, :, :, :, : b.own_y] = 0
                    keep[i, :, :, :, :, : b.own_x] = 0
                attn = attn * keep
            # The margin keys: no weight of their own, their value blocks pasted by the others.
            ring = attn.new_zeros(g * n, ly + 2 * half, lx + 2 * half, by, bx)
            ring[:, half : half + ly, half : half + lx] = attn.view(g * n, ly, lx, by, bx)
            attn = ring
            paste = torch.bmm(values.flatten(2), _shift_sum(attn, p).flatten(1, 2).flatten(2))
            pieces = _depth_to_space(paste.view(g * n, c * u * u, by + 2 * half, -1), u)
            pieces = pieces.view(g, n, c, *pieces.shape[-2:])
            ph, pw = pieces.shape[-2:]
            for i, b in enumerate(group):
                canvas[:, :, u * b.y : u * b.y + ph, u * b.x : u * b.x + pw] += pieces[i]
        out = canvas[:, :, pad : pad + u * h, pad : pad + u * w] / self.overlap_divisor
        return out.to(value.dtype)


# The three rearrangements below are F.unfold (stride 1), F.pixel_unshuffle and
# F.pixel_shuffle written as slices and permuted copies: the same values in the same order, but
# PyTorch's CPU kernels for those three (im2col, the shuffles) were the slow ones of a bf16
# forward pass, several times slower than a plain strided copy (benchmarks/results/photo*.md
# measures the end-to-end effect).


def _patches(x: torch.Tensor, p: int) -> torch.Tensor:
    """``F.unfold(x, p)``: every ``p x p`` patch of x, N, C p p, (H - p + 1)(W - p + 1)."""
    n, c, h, w = x.shape
    rows, cols = h - p + 1, w - p + 1
    shifted = [x[:, :, dy : dy + rows, dx : dx + cols] for dy in range(p) for dx in range(p)]
    return torch.stack(shifted, dim=2).reshape(n, c * p * p, rows * cols)


def _space_to_depth(x: torch.Tensor, u: int) -> torch.Tensor:
    """``F.pixel_unshuffle(x, u)``: N, C, uH, uW -> N, C u u, H, W."""
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // u, u, w // u, u).permute(0, 1, 3, 5, 2, 4)
    return blocks.reshape(n, c * u * u, h // u, w // u)


def _depth_to_space(x: torch.Tensor, u: int) -> torch.Tensor:
    """``F.pixel_shuffle(x, u)``: N, C u u, H, W -> N, C, uH, uW."""
    n, c, h, w = x.shape
    pixels = x.reshape(n, c // (u * u), u, u, h, w).permute(0, 1, 4, 2, 5, 3)
    return pixels.reshape(n, c // (u * u), h * u, w * u)


class _ShiftSum(torch.autograd.Function):
    """Autograd for :func:`_shift_sum`: its adjoint is the same shifted slices, scattered."""

    @staticmethod
    def forward(ctx: Any, attn: torch.Tensor, patch_size: int) -> torch.Tensor:
        ctx.layout = _ShiftLayout(attn.shape, patch_size)
        return ctx.layout.forward(attn)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ctx.layout.adjoint(grad), None


def _shift_sum(attn: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The paste of the cross-scale attention as weights on the values' blocks.

    Query ``q`` pastes, for every key ``l``, the ``u p x u p`` value region around block
    ``l`` onto the canvas around block ``q``: block ``l + m - half`` of the values lands on
    canvas block ``q + m`` for each offset ``m`` in the ``p x p`` patch. Summing the attention
    over those offsets first, ``T[l', Q] = sum_m attn[l' - m + half, Q - m]``, turns the paste
    (``p^2`` products per weight, a transposed convolution) into one product
    ``values @ T``: about ``p^2`` times fewer multiply-adds, the same result.

    ``attn``: N, Ly, Lx, R, W (keys on the small grid, a band of R query rows). Returns
    N, Ly, Lx, R + p - 1, W + p - 1 (the canvas with its margins).
    """
    if patch_size == 1:
        return attn
    return _ShiftSum.apply(attn, patch_size)


def _shift_sum_slices(attn: torch.Tensor, patch_size: int) -> torch.Tensor:
    """:func:`_shift_sum` as zero padding and ``p`` shifted slices per axis (separable): the
    same sums in plain ops that any exporter traces (Pad, Slice, Add), for any batch.

    With the key axes padded by ``half`` and the query axes by ``p - 1`` on both sides, the
    term of offset ``m`` is the slice starting at ``s = p - 1 - m`` on both of its axes.
    """
    p = patch_size
    if p == 1:
        return attn
    half = p // 2
    _, ly, lx, r, w = attn.shape
    a = F.pad(attn, (p - 1, p - 1, p - 1, p - 1, half, half, half, half))
    cols = a[:, :, 0:lx, :, 0 : w + p - 1]
    for s in range(1, p):
        cols = cols + a[:, :, s : s + lx, :, s : s + w + p - 1]
    out = cols[:, 0:ly, :, 0 : r + p - 1]
    for s in range(1, p):
        out = out + cols[:, s : s + ly, :, s : s + r + p - 1]
    return out


class _ShiftLayout:
    """``T[l', Q] = sum_m attn[l' - m + half, Q - m]`` as sums of flat, contiguous slices.

    The offsets ``m = (my, mx)`` shift the key rows with the query rows and the key columns
    with the query columns, so the sum is separable: ``p`` shifted additions along the columns,
    then ``p`` along the rows. In a buffer with zero margins (``half`` keys on each side, the
    rows and columns grown by ``p - 1``) one shift moves every element by the same flat
    offset, so each addition is one long contiguous slice (``Tensor.as_strided``) instead of a
    5-d strided slice: a read that falls off a row lands in a zero margin. bfloat16 additions
    over strided slices of short rows were the slow part of the paste (the end-to-end effect:
    run 3 of ``benchmarks/results/photo_x2.md``). The adjoint scatters the same slices.
    Additions in the input's dtype: a float32 accumulator would cost a cast per addition (the
    paste's matmul accumulates in float32; the change bf16 makes in the output is measured by
    ``benchmarks/inference.py``).
    """

    def __init__(self, shape: torch.Size, patch_size: int) -> None:
        self.n, self.ly, self.lx, self.r, self.w = shape
        self.p, self.half = patch_size, patch_size // 2
        self.rows, self.cols = self.r + patch_size - 1, self.w + patch_size - 1
        p, half, rows, cols = patch_size, self.half, self.rows, self.cols
        self.block = self.lx * rows * cols  # one key row of the result: Lx, rows, cols
        # Pass 1 (columns) reads A: N, Ly, Lx + 2 half, rows, cols (the input, zero-padded),
        # after `margin_a` leading zeros; pass 2 (rows) reads B: N, Ly + 2 half, block.
        self.slab_a = (self.lx + 2 * half) * rows * cols
        self.margin_a = p - 1
        self.offsets_a = [(2 * half - m) * rows * cols - m for m in range(p)]
        self.slab_b = (self.ly + 2 * half) * self.block
        self.margin_b = (p - 1) * cols
        self.offsets_b = [(2 * half - m) * self.block - m * cols for m in range(p)]

    def _views_a(self, a: torch.Tensor) -> list[torch.Tensor]:  # each N, Ly, block
        size, stride = (self.n, self.ly, self.block), (self.ly * self.slab_a, self.slab_a, 1)
        return [a.as_strided(size, stride, self.margin_a + o) for o in self.offsets_a]

    def _views_b(self, b: torch.Tensor) -> list[torch.Tensor]:  # each N, Ly block
        size, stride = (self.n, self.ly * self.block), (self.slab_b, 1)
        return [b.as_strided(size, stride, self.margin_b + o) for o in self.offsets_b]

    def _a_input(self, a: torch.Tensor) -> torch.Tensor:  # where the input sits in A
        grid = a[self.margin_a :].view(self.n, self.ly, -1, self.rows, self.cols)
        return grid[:, :, self.half : self.half + self.lx, : self.r, : self.w]

    def _b_inner(self, b: torch.Tensor) -> torch.Tensor:  # pass 1's result in B: N, Ly, block
        return b[self.margin_b :].view(self.n, -1, self.block)[:, self.half : self.half + self.ly]

    def forward(self, attn: torch.Tensor) -> torch.Tensor:
        a = attn.new_zeros(self.margin_a + self.n * self.ly * self.slab_a)
        self._a_input(a).copy_(attn)
        b = attn.new_empty(self.margin_b + self.n * self.slab_b)
        b[: self.margin_b].zero_()
        slabs = b[self.margin_b :].view(self.n, -1, self.block)
        slabs[:, : self.half].zero_()
        slabs[:, self.half + self.ly :].zero_()
        inner = self._b_inner(b)
        first, second, *rest = self._views_a(a)
        torch.add(first, second, out=inner)
        for view in rest:
            inner.add_(view)
        del a
        first, second, *rest = self._views_b(b)
        out = torch.add(first, second)
        for view in rest:
            out.add_(view)
        return out.view(self.n, self.ly, self.lx, self.rows, self.cols)

    def adjoint(self, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.reshape(self.n, self.ly * self.block)
        b = grad.new_zeros(self.margin_b + self.n * self.slab_b)
        for view in self._views_b(b):
            view.add_(grad)
        inner = self._b_inner(b)
        a = grad.new_zeros(self.margin_a + self.n * self.ly * self.slab_a)
        for view in self._views_a(a):
            view.add_(inner)
        return self._a_input(a).contiguous()
