"""Training configuration: one YAML file, sections of documented keys, ``key=value`` overrides.

A config file is a YAML mapping with the sections of :class:`TrainConfig` (``model``,
``data``, ``optim``, ``train``, ``val``, ``checkpoint``, ``log``) plus a few top-level keys
(``name``, ``output_dir``, ``seed``). Every key has a default, so a config only states what
differs (``data.train_dirs`` is the one key without a usable default). Unknown keys are an
error that names them; values are type-checked.

Overrides on the command line are ``section.key=value`` (or ``key=value`` when the key name
is unique across sections), with ``value`` read as YAML: ``optim.lr=2e-4``, ``steps=500``,
``data.train_dirs=[a, b]``, ``val.dirs=[]``, ``model.chunk_size=null``.

Every key with its type, default and meaning: :func:`config_table` (``configs/README.md`` is
generated from it).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from ..models.sem import BRANCHES
from .sections import (
    CheckpointSection,
    ConfigError,
    DataSection,
    LogSection,
    ModelSection,
    OptimSection,
    TrainSection,
    ValSection,
    _key,
)

__all__ = [
    "CheckpointSection",
    "ConfigError",
    "DataSection",
    "LogSection",
    "ModelSection",
    "OptimSection",
    "TrainConfig",
    "TrainSection",
    "ValSection",
    "apply_overrides",
    "config_table",
    "load_config",
    "update_readme",
]


@dataclass
class TrainConfig:
    """Everything a training run needs. Build with :func:`load_config` or directly."""

    name: str = _key("", "Run name (default: the config file's name without `.yaml`).")
    output_dir: str | None = _key(
        None, "Where checkpoints and logs go. `null`: `runs/<name>` in the current directory."
    )
    seed: int = _key(0, "Seed of weight initialisation, crops, augmentation and image order.")
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    val: ValSection = field(default_factory=ValSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)

    def __post_init__(self) -> None:
        self.validate()

    # -- derived ------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """The output folder: ``output_dir``, else ``runs/<name>``."""
        if self.output_dir:
            return Path(self.output_dir)
        return Path("runs") / (self.name or "default")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-ready)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from a nested dict, type-checking every value; unknown keys are an error."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
        config = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            if _is_section(f):
                object.__setattr__(config, f.name, f.default_factory())  # type: ignore[misc]
            else:
                default = (
                    f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
                )
                object.__setattr__(config, f.name, default)
        unknown: list[str] = []
        for key, value in data.items():
            if key in SECTIONS:
                if value is None:
                    continue
                if not isinstance(value, dict):
                    raise ConfigError(f"{source}: `{key}` must be a mapping of keys")
                for sub, sub_value in value.items():
                    if _field(SECTIONS[key], sub) is None:
                        unknown.append(f"{key}.{sub}")
                    else:
                        _set(config, f"{key}.{sub}", sub_value, source)
            elif _field(TrainConfig, key) is not None:
                _set(config, key, value, source)
            else:
                unknown.append(str(key))
        if unknown:
            raise ConfigError(f"{source}: unknown keys: {', '.join(_suggest(k) for k in unknown)}")
        config.validate()
        return config

    def validate(self) -> None:
        """Check values beyond their types (ranges, combinations); raises :class:`ConfigError`."""
        m, d, o, t, v = self.model, self.data, self.optim, self.train, self.val
        checks = [
            (m.scale in (2, 3, 4), f"model.scale must be 2, 3 or 4, got {m.scale}"),
            (
                m.n_feats >= 2 and m.n_feats % 2 == 0,
                f"model.n_feats must be even, got {m.n_feats}",
            ),
            (m.depth >= 1, f"model.depth must be >= 1, got {m.depth}"),
            (
                bool(m.branches) and set(m.branches) <= set(BRANCHES),
                f"model.branches must be a non-empty subset of {', '.join(BRANCHES)}, "
                f"got {m.branches}",
            ),
            (m.patch_size in (1, 3, 5), f"model.patch_size must be 1, 3 or 5, got {m.patch_size}"),
            (
                m.chunk_size in ("auto", None)
                or (isinstance(m.chunk_size, int) and m.chunk_size >= 1),
                f"model.chunk_size must be auto, null or a positive number, got {m.chunk_size}",
            ),
            (d.patch_size >= 3, f"data.patch_size must be >= 3, got {d.patch_size}"),
            (d.batch_size >= 1, f"data.batch_size must be >= 1, got {d.batch_size}"),
            (d.workers >= 0, f"data.workers must be >= 0, got {d.workers}"),
            (o.lr > 0, f"optim.lr must be > 0, got {o.lr}"),
            (len(o.betas) == 2, f"optim.betas must be two numbers, got {o.betas}"),
            (o.step_size >= 1, f"optim.step_size must be >= 1, got {o.step_size}"),
            (o.grad_clip >= 0, f"optim.grad_clip must be >= 0, got {o.grad_clip}"),
            (o.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {o.warmup_steps}"),
            (t.steps >= 0, f"train.steps must be >= 0, got {t.steps}"),
            (t.threads >= 0, f"train.threads must be >= 0, got {t.threads}"),
            (t.max_bad_steps >= 1, f"train.max_bad_steps must be >= 1, got {t.max_bad_steps}"),
            (v.every >= 0, f"val.every must be >= 0, got {v.every}"),
            (
                _is_tile(v.tile),
                f"val.tile must be auto, 0 (whole images) or a number >= 3, got {v.tile}",
            ),
            (
                v.tile_overlap is None or v.tile_overlap >= 0,
                f"val.tile_overlap must be null or >= 0, got {v.tile_overlap}",
            ),
            (self.checkpoint.every >= 0, "checkpoint.every must be >= 0"),
            (self.checkpoint.keep_last >= 1, "checkpoint.keep_last must be >= 1"),
            (self.log.every >= 1, f"log.every must be >= 1, got {self.log.every}"),
            (
                t.device == "auto" or t.device == "cpu" or t.device.startswith("cuda"),
                f"train.device must be auto, cpu or cuda[:N], got {t.device!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "data": DataSection,
    "optim": OptimSection,
    "train": TrainSection,
    "val": ValSection,
    "checkpoint": CheckpointSection,
    "log": LogSection,
}


def _is_section(f: dataclasses.Field) -> bool:
    return f.name in SECTIONS


def _field(cls: type, name: str) -> dataclasses.Field | None:
    for f in dataclasses.fields(cls):
        if f.name == name and not (cls is TrainConfig and _is_section(f)):
            return f
    return None


def _all_keys() -> list[str]:
    keys = [f.name for f in dataclasses.fields(TrainConfig) if not _is_section(f)]
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, _all_keys(), n=1)
    if not close:
        leaf = key.rsplit(".", 1)[-1]
        close = [k for k in _all_keys() if k.rsplit(".", 1)[-1] == leaf][:1]
    return f"{key} (did you mean {close[0]}?)" if close else key


def _resolve_key(key: str) -> str:
    """``section.key`` as is; a bare key names a top-level key or a unique leaf of a section."""
    keys = _all_keys()
    if key in keys:
        return key
    if "." not in key:
        matches = [k for k in keys if k.rsplit(".", 1)[-1] == key]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ConfigError(f"key `{key}` is ambiguous: write one of {', '.join(matches)}")
    raise ConfigError(f"unknown key: {_suggest(key)}")


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls, globalns=globals() | {"Literal": Literal})


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(str(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list[{_type_name(get_args(tp)[0])}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against (and, for YAML's quirks, converted to) the type ``tp``."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        errors = []
        for option in get_args(tp):
            try:
                return _coerce(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{key}: expected one of {_type_name(tp)}, got {value!r}")
    if origin is list:
        if isinstance(value, (str, int, float)) and get_args(tp)[0] is str:
            value = [value]  # a single folder
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list ({_type_name(tp)}), got {value!r}")
        return [_coerce(v, get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.replace("_", ""))
            except ValueError:
                pass
            else:
                if number.is_integer():
                    return int(number)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads `1e-4` as a string
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        else:
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, PathLike):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp!r}")  # pragma: no cover


def _set(config: TrainConfig, key: str, value: Any, source: str) -> None:
    if "." in key:
        section, name = key.split(".", 1)
        target: Any = getattr(config, section)
        tp = _hints(SECTIONS[section])[name]
    else:
        target, name, tp = config, key, _hints(TrainConfig)[key]
    try:
        setattr(target, name, _coerce(value, tp, key))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def apply_overrides(config: TrainConfig, overrides: typing.Sequence[str]) -> TrainConfig:
    """A copy of ``config`` with ``key=value`` overrides applied (values read as YAML)."""
    data = config.to_dict()
    new = TrainConfig.from_dict(data, source="config")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        raw_key, raw_value = item.split("=", 1)
        key = _resolve_key(raw_key.strip())
        try:
            value = yaml.safe_load(raw_value) if raw_value.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: cannot read the value ({exc})") from None
        _set(new, key, value, "override")
    new.validate()
    return new


def load_config(
    path: str | PathLike[str] | None = None, overrides: typing.Sequence[str] = ()
) -> TrainConfig:
    """Read a YAML config (``None``: all defaults), apply ``key=value`` overrides, validate.

    ``name`` defaults to the file's stem, so ``configs/cpu_small_x2.yaml`` writes to
    ``runs/cpu_small_x2``.
    """
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        data = loaded or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    config = TrainConfig.from_dict(data, source=source)
    if not config.name:
        config.name = Path(path).stem if path is not None else "default"
    return apply_overrides(config, overrides)


def config_table() -> str:
    """Markdown documentation of every config key: key, type, default, meaning."""
    lines = [
        "<!-- keys:start (generated by csnln.training.config_table) -->",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]

    def row(key: str, f: dataclasses.Field, tp: Any) -> str:
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = yaml.safe_dump(default, default_flow_style=True).strip()
        shown = shown.removesuffix("\n...").removesuffix("...").strip()
        return f"| `{key}` | {_type_name(tp)} | `{shown}` | {f.metadata.get('doc', '')} |"

    hints = _hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if not _is_section(f):
            lines.append(row(f.name, f, hints[f.name]))
    for section, cls in SECTIONS.items():
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            lines.append(row(f"{section}.{f.name}", f, hints[f.name]))
    lines.append("<!-- keys:end -->")
    return "\n".join(lines) + "\n"


def update_readme(path: str | PathLike[str]) -> bool:
    """Replace the key table of a Markdown file (between the ``keys:start``/``keys:end``
    markers) with :func:`config_table`; returns whether the file changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    start = text.index("<!-- keys:start")
    end = text.index("<!-- keys:end -->") + len("<!-- keys:end -->\n")
    new = text[:start] + config_table() + text[end:]
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def _is_tile(tile: object) -> bool:
    from ..inference import check_tile

    try:
        check_tile(tile)
    except ValueError:
        return False
    return True
