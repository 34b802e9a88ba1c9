"""The sections of a training config (``model``, ``data``, ``optim``, ``train``, ``val``,
``checkpoint``, ``log``): every key with its type, default and meaning (``configs/README.md``
is generated from these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CheckpointSection",
    "ConfigError",
    "DataSection",
    "LogSection",
    "ModelSection",
    "OptimSection",
    "TrainSection",
    "ValSection",
]


class ConfigError(ValueError):
    """A config file or override that cannot be used (unknown key, wrong type, bad value)."""


def _key(default: Any, doc: str) -> Any:
    """A config key: its default and its documentation (shown in ``configs/README.md``)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass
class ModelSection:
    """The network (see ``csnln.CSNLN``)."""

    scale: int = _key(2, "Upscaling factor: 2, 3 or 4.")
    n_feats: int = _key(128, "Feature channels F (the paper: 128).")
    depth: int = _key(12, "Recurrent SEM steps D (the paper: 12).")
    branches: list[str] = _key(
        ["local", "in_scale", "cross_scale"],
        "The SEM cell's branches, a non-empty subset of `local`, `in_scale`, `cross_scale` "
        "(the paper: all three; `csnln ablate branches` compares the subsets).",
    )
    fusion: Literal["projection", "concat"] = _key(
        "projection",
        "How the branches are fused: `projection` (the paper's mutual-projected fusion) or "
        "`concat` (concatenation and a 1x1 conv).",
    )
    patch_size: int = _key(
        3,
        "Matching patch size p of the attentions: 1, 3 or 5 (the paper: 3). Not the "
        "training crop, which is `data.patch_size`.",
    )
    chunk_size: int | str | None = _key(
        "auto",
        "Query positions per attention chunk: `auto` (bounded score memory), a number, or "
        "`null` (all at once; fastest for small patches). Changes speed/memory, not results.",
    )
    gradient_checkpointing: bool | Literal["none", "full", "selective"] = _key(
        False,
        "Activation checkpointing of the SEM steps. `full` (or `true`): recompute each step "
        "in the backward pass, keeping only its LR input (least memory, about one more "
        "forward pass of time); `selective`: keep the convolution outputs, recompute the "
        "attentions and the rest (between the two); `none` (or `false`): keep everything. "
        "Gradients are the same in every mode.",
    )
    attention_window: int | None = _key(
        None,
        "Confine the attentions to windows of this many LR pixels in training and validation "
        "(as `csnln upscale --attention-window` runs them; not the authors' computation): "
        "weights adapted to the windowed plan. `null`: each attention over the whole patch.",
    )
    init: str | None = _key(
        None,
        "Weights to start from (fine-tuning): a bundled model name, a project checkpoint "
        "(.safetensors) or an authors' checkpoint (model_x2.pt ...), of the same n_feats and "
        "depth. Of another scale (warm-starting x3/x4 from x2), the tensors whose names and "
        "shapes agree are loaded and the scale-specific layers keep their initialisation. "
        "`null`: random initialisation from `seed`.",
    )


@dataclass
class DataSection:
    """Training images: HR folders; LR is made by MATLAB-exact bicubic downscaling."""

    train_dirs: list[str] = _key(
        [],
        "HR image folders (glob patterns allowed, e.g. `../shared/data/train/*`), relative "
        "to the current directory. Images smaller than a patch are skipped with a warning; "
        "unreadable ones are skipped and named.",
    )
    exclude: list[str] = _key(
        [],
        "Images (files or glob patterns) of `train_dirs` that are never trained on: a "
        "validation split held out of the training data (`csnln.data.splits`).",
    )
    patch_size: int = _key(
        48, "LR patch size p; the HR patch is scale*p (the paper: 48, i.e. HR 96/144/192)."
    )
    batch_size: int = _key(
        16, "Global batch size (all processes together; divisible by the number of processes)."
    )
    augment: bool = _key(True, "Random horizontal/vertical flips and 90-degree rotations.")
    workers: int = _key(4, "Data loader worker processes per training process (0: in-process).")
    cache: Literal["disk", "memory"] = _key(
        "disk",
        "Where decoded HR and bicubic LR images are kept: `disk` (.npy files under "
        "`cache_dir`, memory-mapped, reused by later runs) or `memory` (recomputed each run).",
    )
    cache_dir: str | None = _key(
        None,
        "Folder of the disk cache (entries keyed by file path, size, mtime and scale). "
        "`null`: $CSNLN_CACHE, else ~/.cache/csnln/train.",
    )


@dataclass
class OptimSection:
    """Adam, the learning-rate schedule and gradient clipping."""

    lr: float = _key(1e-4, "Initial learning rate.")
    betas: list[float] = _key([0.9, 0.999], "Adam betas.")
    eps: float = _key(1e-8, "Adam epsilon.")
    weight_decay: float = _key(0.0, "Adam weight decay (L2).")
    schedule: Literal["step", "cosine", "constant"] = _key(
        "step",
        "`step`: multiply by `gamma` every `step_size` steps; `cosine`: cosine decay from "
        "`lr` to `min_lr` over `train.steps`; `constant`.",
    )
    step_size: int = _key(200_000, "Steps between learning-rate decays (`schedule: step`).")
    gamma: float = _key(0.5, "Decay factor of the step schedule.")
    min_lr: float = _key(0.0, "Final learning rate of the cosine schedule.")
    warmup_steps: int = _key(0, "Linear warm-up from 0 over this many steps (0: none).")
    grad_clip: float = _key(0.0, "Clip the global gradient norm to this value (0: no clipping).")


@dataclass
class TrainSection:
    """The loop: length, device, precision, robustness."""

    steps: int = _key(1_000_000, "Optimizer steps in total (the paper: 1000 x 1000).")
    device: str = _key("auto", "`auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = _key(
        "fp32",
        "`fp32`; `bf16` (bfloat16 autocast, CPU and GPU); `fp16` (float16 autocast with a "
        "gradient scaler, GPU only); `auto`: bf16 on a GPU that has it; on a CPU with bf16 "
        "instructions the faster of fp32 and bf16, timed on this config's model and batch "
        "before the first step (a few seconds; bf16 only when at least 1.1x faster), and "
        "kept in checkpoints so that a resumed run keeps it. Weights and optimizer state "
        "stay float32.",
    )
    threads: int = _key(0, "CPU threads per process for PyTorch (0: PyTorch's default).")
    keep_freed_memory: bool = _key(
        False,
        "On a CPU, keep freed memory in the process (glibc `mallopt`, as `csnln upscale` "
        "does): the step's large attention tensors then reuse memory instead of "
        "page-faulting anew each step, and the resident size stays at its peak. The small "
        "CPU configs turn it on.",
    )
    max_bad_steps: int = _key(
        3,
        "A non-finite loss or gradient skips the step; this many in a row roll back to the "
        "last good checkpoint and halve the learning rate.",
    )


@dataclass
class ValSection:
    """Validation PSNR/SSIM (Y channel, `scale` pixels cropped) on benchmark folders."""

    dirs: list[str] = _key(
        [],
        "Benchmark folders (HR images, or the EDSR layout DIR/HR + DIR/LR_bicubic); "
        "`[]`: no validation.",
    )
    every: int = _key(
        1000, "Validate every this many steps, and at the end of training (0: only at the end)."
    )
    precision: Literal["fp32", "bf16", "fp16"] = _key("fp32", "Precision of validation.")
    tile: int | str = _key(
        "auto",
        "LR tile size for validation images: `auto` (the model's tile plan, as `csnln upscale` "
        "runs it), a number, or `0` (always whole images).",
    )
    tile_overlap: int | None = _key(
        None, "Overlap of the validation tiles, LR pixels (`null`: the tile plan's default)."
    )


@dataclass
class CheckpointSection:
    """Training checkpoints (weights + optimizer/schedule/data state)."""

    every: int = _key(
        1000, "Write a checkpoint every this many steps (also at the end and on Ctrl-C/SIGTERM)."
    )
    keep_last: int = _key(3, "Keep the last K checkpoints (older ones are deleted).")
    keep_best: bool = _key(True, "Keep `best.safetensors`, the weights of best validation PSNR.")


@dataclass
class LogSection:
    """Logging: `log.csv`, `train.log`, progress bar, TensorBoard."""

    every: int = _key(100, "Write a `log.csv` row (mean loss, lr, it/s) every this many steps.")
    progress: bool = _key(True, "Show a progress bar with loss, it/s and ETA.")
    tensorboard: bool = _key(
        False, "Also write TensorBoard events to `<output_dir>/tb` (needs `tensorboard`)."
    )
