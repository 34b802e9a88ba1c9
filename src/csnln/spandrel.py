"""CSNLN for spandrel, the model loader of chaiNNer and ComfyUI.

spandrel has no CSNLN; this module gives it one, the way ``spandrel_extra_arches`` adds its
architectures::

    import csnln.spandrel
    from spandrel import ModelLoader

    csnln.spandrel.install()                      # CSNLN joins spandrel.MAIN_REGISTRY
    model = ModelLoader().load_from_file("csnln_small_x2.safetensors")   # or model_x2.pt
    sr = model(lr)                                # N x 3 x H x W in [0, 1] -> x2

Two state-dict layouts are detected: csnln's own (``.safetensors`` of this package, the bundled
weights) and the authors' release (``model_x{2,3,4}.pt`` of the EDSR framework: their key
names, converted by :mod:`csnln.models.official`; its ``rgb_range`` is read from the
mean-shift bias, as spandrel's IPT loader does). Scale, width and depth come from the tensors'
shapes, the branches and the fusion from which tensors there are. What no tensor holds (the
matching patch size, the softmax temperature: the paper's 3 and 10) takes the paper's values:
a csnln file trained with others loads right through :func:`csnln.zoo.load_model`, not here.

Needs the ``spandrel`` extra (``pip install "csnln[spandrel]"``; spandrel itself needs
torchvision).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch

from .models.network import CSNLN, MIN_INPUT_SIZE
from .models.official import (
    convert_official_state_dict,
    infer_official_config,
    is_official_state_dict,
)
from .models.sem import BRANCHES

try:
    from spandrel import (
        Architecture,
        ArchRegistry,
        ArchSupport,
        ImageModelDescriptor,
        ModelTiling,
        SizeRequirements,
    )
    from spandrel.util import KeyCondition
except ImportError as exc:  # pragma: no cover - said to the user
    raise ImportError(
        f'csnln.spandrel needs spandrel ({exc.name} is missing): pip install "csnln[spandrel]"'
    ) from None

__all__ = ["ARCH_SUPPORTS", "CSNLNArch", "OfficialCSNLNArch", "install", "registry"]

StateDict = Mapping[str, Any]
#: The authors' EDSR framework normalises by this RGB mean (MeanShift bias = -rgb_range * mean).
_RGB_MEAN = torch.tensor((0.4488, 0.4371, 0.4040))
#: What csnln measured of half precision (benchmarks/results/gpu.md, Set5 x2): fp16 changed
#: PSNR by -0.0003 dB, bf16 by -0.006 dB (the bundled model); both are supported.
SUPPORTS_HALF = True
SUPPORTS_BFLOAT16 = True


#: The kernel of the SEM cell's strided conv back to the LR grid, per scale (csnln.models.sem).
_SCALE_OF_KERNEL = {6: 2, 9: 3, 8: 4}


def _csnln_config(state: StateDict) -> dict[str, Any]:
    """Scale, n_feats, depth, branches and fusion of a csnln state dict, from its tensors."""
    n_feats = int(state["head.0.conv.weight"].shape[0])
    depth = int(state["tail.weight"].shape[1]) // n_feats
    # Every cell has the strided conv back to the LR grid, whichever branches it has.
    kernel = int(state["cell.output_down.conv.weight"].shape[-1])
    if kernel not in _SCALE_OF_KERNEL:
        expected = ", ".join(f"{k} (x{s})" for k, s in _SCALE_OF_KERNEL.items())
        raise ValueError(
            f"not a csnln scale: cell.output_down.conv.weight is {kernel}x{kernel}, "
            f"expected {expected}"
        )
    scale = _SCALE_OF_KERNEL[kernel]
    keys = set(state)
    subsets = [c for k in (3, 2, 1) for c in itertools.combinations(BRANCHES, k)]
    for branches, fusion in itertools.product(subsets, ("projection", "concat")):
        probe = CSNLN(scale, 2, 1, branches=branches, fusion=fusion).state_dict()
        if set(probe) == keys:  # the cell's weights are shared by its steps: no per-step keys
            return {"scale": scale, "n_feats": n_feats, "depth": depth, "branches": branches,
                    "fusion": fusion}  # fmt: skip
    raise ValueError("a csnln state dict whose branches and fusion could not be told apart")


def _descriptor(model: CSNLN, state: StateDict, arch: Any, call: Any = None) -> Any:
    config = model.config
    return ImageModelDescriptor(
        model,
        state,
        architecture=arch,
        purpose="SR",
        tags=[f"{config.n_feats}nf", f"{config.depth}steps", "+".join(config.branches)],
        supports_half=SUPPORTS_HALF,
        supports_bfloat16=SUPPORTS_BFLOAT16,
        scale=model.scale,
        input_channels=3,
        output_channels=3,
        # CSNLN pads its input to its size multiple itself; the attentions' cost grows with
        # the square of a tile's pixels, so runners should tile large images.
        size_requirements=SizeRequirements(minimum=MIN_INPUT_SIZE),
        tiling=ModelTiling.SUPPORTED,
        call_fn=call,
    )


class CSNLNArch(Architecture[CSNLN]):  # type: ignore[misc]
    """csnln's own state dicts (this package's ``.safetensors``, the bundled weights)."""

    def __init__(self) -> None:
        super().__init__(
            id="CSNLN",
            name="CSNLN",
            detect=KeyCondition.has_all(
                "subtract_mean.weight",
                "add_mean.weight",
                "head.0.conv.weight",
                "head.1.conv.weight",
                "cell.output_down.conv.weight",
                "tail.weight",
            ),
        )

    def load(self, state_dict: StateDict) -> Any:
        model = CSNLN(**_csnln_config(state_dict))
        model.load_state_dict(dict(state_dict), strict=True)
        return _descriptor(model.eval(), state_dict, self)


class OfficialCSNLNArch(Architecture[CSNLN]):  # type: ignore[misc]
    """The authors' released checkpoints (``model_x{2,3,4}.pt``, EDSR framework key names)."""

    def __init__(self) -> None:
        super().__init__(
            id="CSNLN-official",
            name="CSNLN",
            detect=KeyCondition.has_all(
                "sub_mean.weight",
                "sub_mean.bias",
                "add_mean.bias",
                "head.1.0.weight",
                "SEM.multi_source_projection.upsample.0.weight",
                "tail.0.weight",
            ),
        )

    def load(self, state_dict: StateDict) -> Any:
        assert is_official_state_dict(state_dict)
        model = CSNLN(**infer_official_config(state_dict))  # type: ignore[arg-type]
        state = {k: v.float() for k, v in state_dict.items()}
        converted = convert_official_state_dict(state, model)
        model.load_state_dict(converted, strict=True)
        # The EDSR framework's rgb_range (1 or 255): its MeanShift bias is -rgb_range * mean.
        bias = state_dict["sub_mean.bias"].float()
        rgb_range = round(float((-bias / _RGB_MEAN).mean()))
        # (spandrel loads the state it is given into the model once more: csnln's names.)
        if rgb_range in (0, 1):
            return _descriptor(model.eval(), converted, self)

        def call(net: CSNLN, x: torch.Tensor) -> torch.Tensor:
            return net(x * rgb_range) / rgb_range

        return _descriptor(model.eval(), converted, self, call)


#: The entries :func:`install` adds to spandrel's registry.
ARCH_SUPPORTS = (
    ArchSupport.from_architecture(CSNLNArch()),
    ArchSupport.from_architecture(OfficialCSNLNArch()),
)


def registry() -> Any:
    """A registry of CSNLN alone (``spandrel.ModelLoader(registry=...)``)."""
    own = ArchRegistry()
    own.add(*ARCH_SUPPORTS)
    return own


def install(*, ignore_duplicates: bool = False) -> list[Any]:
    """Add CSNLN to ``spandrel.MAIN_REGISTRY`` (as ``spandrel_extra_arches.install()`` does);
    returns the entries added. Calling it twice is an error unless ``ignore_duplicates``."""
    from spandrel import MAIN_REGISTRY

    return MAIN_REGISTRY.add(*ARCH_SUPPORTS, ignore_duplicates=ignore_duplicates)
