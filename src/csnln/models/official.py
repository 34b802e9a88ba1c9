"""Loading the authors' released checkpoints (``model_x2.pt`` etc.).

This is the only place where the authors' key names appear: they are translated to this
package's module names by :func:`convert_official_state_dict`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import torch

from .network import CSNLN

# (pattern on the authors' key, replacement): applied in order, each at most once.
_RENAMES: list[tuple[str, str]] = [
    (r"^SEM\.multi_source_projection_2\.", "cell.projection2."),
    (r"^SEM\.multi_source_projection\.", "cell.projection."),
    (r"^SEM\.down_sample_1\.", "cell.project_down."),
    (r"^SEM\.error_encode\.", "cell.error_up."),
    (r"^SEM\.down_sample_3\.", "cell.project_down2."),
    (r"^SEM\.error_encode_2\.", "cell.error_up2."),
    (r"^SEM\.down_sample_[24]\.", "cell.output_down."),
    (r"^SEM\.post_conv\.", "cell.post_conv."),
    (r"^sub_mean\.", "subtract_mean."),
    (r"^tail\.0\.", "tail."),
    (r"\.up_attention\.", ".cross_scale."),
    (r"\.down_attention\.", ".in_scale."),
    (r"\.conv_match_?1\.", ".query."),
    (r"\.conv_match_?2\.", ".key."),
    (r"\.conv_assembly\.", ".value."),
    (r"\.encoder\.body\.0\.", ".fuse.conv1."),
    (r"\.encoder\.body\.1\.", ".fuse.act."),
    (r"\.encoder\.body\.2\.", ".fuse.conv2."),
    # BasicBlock / Sequential(conv, PReLU) -> ConvPReLU(conv, act)
    (r"\.0\.(weight|bias)$", r".conv.\1"),
    (r"\.1\.weight$", r".act.weight"),
]
_HEAD = re.compile(r"^head\.(\d+)\.([01])\.(weight|bias)$")
_NORM_FLOOR_KEY = "escape_NaN"


class CheckpointError(ValueError):
    """A checkpoint does not fit the model it is loaded into."""


def _rename(key: str) -> str:
    head = _HEAD.match(key)
    if head:  # head.i.0 / head.i.1 are (conv, PReLU) pairs
        layer, param = head.group(2), head.group(3)
        return f"head.{head.group(1)}.{'conv' if layer == '0' else 'act'}.{param}"
    for pattern, replacement in _RENAMES:
        key = re.sub(pattern, replacement, key, count=1)
    return key


def _as_state_dict(
    source: str | PathLike[str] | Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle/zip errors, or non-weights content
            raise CheckpointError(f"{path}: not a loadable PyTorch checkpoint ({exc})") from exc
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
        state = dict(state)
    if isinstance(state.get("state_dict"), Mapping):  # {'state_dict': ...} wrappers
        state = dict(state["state_dict"])
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint entries that are not tensors: {', '.join(bad[:5])}")
    return state


def is_official_state_dict(state: Mapping[str, object]) -> bool:
    """True when the keys look like the authors' release (``SEM.multi_source_projection...``)."""
    return any(k.startswith("SEM.multi_source_projection.") for k in state)


def infer_official_config(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Scale, n_feats and depth of an authors' checkpoint, read from its shapes."""
    try:
        n_feats = state["head.1.0.weight"].shape[0]
        depth = state["tail.0.weight"].shape[1] // n_feats
        upsample = state["SEM.multi_source_projection.upsample.0.weight"].shape[-1]
    except KeyError as exc:
        raise CheckpointError(f"not an authors' CSNLN checkpoint: missing key {exc}") from exc
    if "SEM.multi_source_projection_2.upsample.0.weight" in state:
        scale = 4
    else:
        scale = 3 if upsample == 9 else 2
    return {"scale": scale, "n_feats": int(n_feats), "depth": int(depth)}


def convert_official_state_dict(
    state: Mapping[str, torch.Tensor], model: CSNLN
) -> dict[str, torch.Tensor]:
    """Translate an authors' state dict to ``model``'s keys, strictly.

    Every key must be consumed and every model key provided with the right shape; all
    problems are listed in one :class:`CheckpointError`.
    """
    expected = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    problems: list[str] = []
    for key, value in state.items():
        if key.endswith(_NORM_FLOOR_KEY):
            # The authors' norm floor, a buffer: check it instead of loading it.
            floor = float(value.flatten()[0]) if value.numel() else float("nan")
            if abs(floor - model.config.norm_floor) > 1e-9:
                problems.append(
                    f"{key} = {floor:g} but the model's norm_floor is {model.config.norm_floor:g}"
                )
            continue
        new = _rename(key)
        if new not in expected:
            unexpected.append(key)
            continue
        if tuple(value.shape) != tuple(expected[new].shape):
            problems.append(
                f"{key}: shape {tuple(value.shape)}, expected {tuple(expected[new].shape)}"
            )
            continue
        converted[new] = value
    missing = sorted(set(expected) - set(converted) - {_rename(k) for k in state})
    if missing or unexpected or problems:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) (as named here): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected)}")
        if problems:
            parts.append("; ".join(problems))
        raise CheckpointError(
            f"checkpoint does not fit CSNLN(scale={model.scale}, n_feats={model.n_feats}, "
            f"depth={model.depth}): " + "; ".join(parts)
        )
    return converted


def load_official(
    source: str | PathLike[str] | Mapping[str, torch.Tensor],
    scale: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    **runtime: object,
) -> CSNLN:
    """Load an authors' checkpoint (path or state dict) into a ready ``CSNLN`` in eval mode.

    ``scale`` is checked against the checkpoint (inferred when ``None``); n_feats and depth
    are read from its shapes. Loading never unpickles arbitrary objects.
    ``runtime`` options (e.g. ``chunk_size``) are passed to the model.
    """
    state = _as_state_dict(source)
    if not is_official_state_dict(state):
        name = source if not isinstance(source, Mapping) else "state dict"
        raise CheckpointError(f"{name}: not an authors' CSNLN checkpoint (no SEM.* keys)")
    config = infer_official_config(state)
    if scale is not None and scale != config["scale"]:
        raise CheckpointError(
            f"checkpoint is for x{config['scale']}, but scale={scale} was asked for"
        )
    model = CSNLN(**config, **runtime)  # type: ignore[arg-type]
    converted = convert_official_state_dict(state, model)
    model.load_state_dict({k: v.to(dtype) for k, v in converted.items()}, strict=True)
    return model.to(dtype).eval()
