"""Typed configuration in layers: defaults → YAML file → ``VIDREC__SECTION__KEY`` env → ``--set``.

Every section is a pydantic model that forbids unknown keys, so a typo fails before any work
with the key's full name. ``model.*`` and ``data.*`` also accept the options of the chosen
model builder / dataset loader (e.g. ``model.hidden_size``, ``data.group_regex``); those are
checked against the builder's / loader's signature by :func:`validate_config`.

    cfg = load_config("configs/demo.yaml", overrides=["train.lr=3e-4", "model.attention=false"])
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vidrec.errors import ConfigError

log = logging.getLogger(__name__)

ENV_PREFIX = "VIDREC__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
DEFAULT_CACHE_BYTES = 2 * 2**30  # data.cache_decoded: true


def parse_bytes(v: Any) -> int:
    """``false``/``0`` → 0, ``true`` → 2 GiB, an integer → bytes, ``"500MB"`` / ``"4GiB"`` → bytes."""
    if v is None or v is False:
        return 0
    if v is True:
        return DEFAULT_CACHE_BYTES
    if isinstance(v, (int, float)) and v >= 0:
        return int(v)
    if isinstance(v, str):
        import re

        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", v)
        if m and m.group(2).lower() in _UNITS:
            return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
        if v.strip().lower() in ("false", "off", "no"):
            return 0
        if v.strip().lower() in ("true", "on", "yes"):
            return DEFAULT_CACHE_BYTES
    raise ValueError("expected false, true or a size such as 500MB or 4GiB")


class DataConfig(BaseModel):
    """Where clips come from and how they are sampled and transformed."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)  # extras → loader options

    dataset: str = "synthetic"  # a registered loader: ucf101, kinetics, list, folder, ... (data show --help)
    root: Path | None = None  # dataset folder (synthetic, unset: <train.out_dir>/data)
    generate: bool = False  # synthetic only: write the dataset into data.root when it is not there (else an error)
    split: int = Field(1, ge=1, le=3)  # official split for UCF101 / HMDB51
    train_subset: str = "train"
    val_subset: str = "val"
    test_subset: str = "test"
    num_frames: int | None = Field(None, ge=1)  # frames per clip; None: the model's own (input_spec)
    sampler: Literal["segments", "dense"] = "segments"  # TSN segments or a dense clip
    stride: int = Field(2, ge=1)  # dense sampler: frames between samples
    target_fps: float | None = None  # dense sampler: keep a clip's duration fixed across frame rates
    image_size: int | None = Field(None, ge=16)  # square crop; None: the model's own (input_spec)
    decode_size: int | None = None  # short side at decode (None: image_size * 8/7)
    scale: tuple[float, float] = (0.7, 1.0)  # RandomResizedCrop area range in training
    horizontal_flip: bool | None = None  # None: on unless class names say left/right
    mean: tuple[float, float, float] | None = None  # None: the model's
    std: tuple[float, float, float] | None = None
    batch_size: int = Field(8, ge=1)
    num_workers: int = Field(2, ge=0)
    pin_memory: bool | None = None  # None: when on CUDA
    strict: bool = False  # a failing video stops the run instead of being skipped
    max_skips: float = Field(
        0.05, ge=0
    )  # training: stand-ins for unreadable videos allowed per epoch (fraction of the subset) before the run stops
    limit: int | None = None  # use only the first N records of each subset (quick runs)
    max_train_samples: int | None = Field(None, ge=1)  # train on N train videos (by class, seeded); val untouched
    # multi-stream model: the hand-joint / object-crop cache (vidrec prepare hands|objects --out). None: <root>/streams
    # for the synthetic dataset, else $VIDREC_CACHE/streams/<dataset>-<hash of the root> (a root is never written to)
    streams_dir: Path | None = None
    streams_on_the_fly: bool = False  # compute a video's streams when it is sampled if the cache lacks them
    # keep decoded evaluation clips in memory up to this many bytes (false: off; true: 2 GiB; or "500MB", "4GiB")
    cache_decoded: int = 0

    @field_validator("cache_decoded", mode="before")
    @classmethod
    def _cache_bytes(cls, v: Any) -> int:
        return parse_bytes(v)


class ModelConfig(BaseModel):
    """Which registered model, and its weights. Other keys are the builder's options."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False)

    name: str = "cnn_rnn"  # registered name, or hf:<hub id or local dir>
    pretrained: bool = False  # fetch the model's known pretrained weights from its hub (online)
    weights: Path | None = None  # local weights: .safetensors, .pth/.pt, or a from_pretrained dir


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"  # torch.optim.AdamW or SGD
    lr: float = Field(3e-4, gt=0)  # base lr (the head's; the backbone gets lr * backbone_lr_mult)
    weight_decay: float = Field(1e-4, ge=0)  # not applied to biases, norms and 1-d parameters
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only (seed 002: lr 0.01, momentum 0.9)
    nesterov: bool = False  # sgd only
    scheduler: Literal["cosine", "step", "plateau", "constant"] = "cosine"  # after the warm-up; see docs/usage.md
    warmup_epochs: float = Field(1.0, ge=0)  # linear warm-up (per optimiser step) before any scheduler
    min_lr_ratio: float = Field(0.01, ge=0, le=1)  # cosine: ends at this × the smallest group lr; plateau: floor
    milestones: list[float] = Field(default_factory=list)  # step: after these epochs, lr *= gamma (e.g. [30, 40])
    gamma: float = Field(0.1, gt=0, lt=1)  # step and plateau: the lr factor
    plateau_patience: int = Field(2, ge=0)  # plateau: epochs without improvement of train.monitor before lr *= gamma
    # backbone part -> epochs it stays frozen, e.g. {layer4: 2, layer3: 4}; other parts: freeze_backbone_epochs
    unfreeze_schedule: dict[str, int] = Field(default_factory=dict)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    grad_clip: float | None = Field(1.0, gt=0)  # max global grad norm; None: off
    accum_steps: int = Field(1, ge=1)  # gradient accumulation
    precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on GPUs and CPUs that have it, else fp32
    freeze_backbone_epochs: int = Field(0, ge=0)  # progressive fine-tuning: backbone frozen this long
    backbone_lr_mult: float = Field(1.0, gt=0)  # backbone lr = lr * this
    early_stop_patience: int | None = Field(5, ge=1)  # epochs without val improvement; None: off
    # the metric that picks checkpoints/best, early stopping and plateau: val_top1 (classification),
    # val_t2v_r1 (retrieval: text→video R@1; a retrieval config's val_top1 means it) or val_loss
    monitor: Literal["val_top1", "val_t2v_r1", "val_loss"] = "val_top1"
    seed: int = 42
    device: str = "auto"  # auto (CUDA → MPS → CPU), cpu, mps, cuda or cuda:N
    out_dir: Path = Path("runs/train")
    max_steps_per_epoch: int | None = Field(None, ge=1)  # cap an epoch (quick runs, benchmarks)
    log_every: int = Field(10, ge=1)  # steps between metrics.jsonl lines
    checkpoint_every_steps: int | None = Field(None, ge=1)  # mid-epoch resumable state (exact resume)
    keep_checkpoints: int | Literal["all"] = 0  # resumable checkpoints/epoch_NNNN kept: the newest N, or all (0: none)
    compile: bool = False  # torch.compile the model
    channels_last: bool = False  # channels-last weights: channels_last_3d for 3D convolutions, channels_last for 2D
    deterministic: bool = False  # torch.use_deterministic_algorithms

    @field_validator("keep_checkpoints", mode="before")
    @classmethod
    def _keep(cls, v: Any) -> Any:
        if v == "all" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            return v
        raise ValueError("expected how many epoch checkpoints to keep (0: none) or all")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError("expected auto, cpu, mps, cuda or cuda:N (e.g. cuda:1)")
        return v

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_no(cls, v: Any) -> Any:
        """YAML reads an unquoted ``no`` (``--set train.precision=no``) as false: that means "no" here."""
        return "no" if v is False else v

    @model_validator(mode="after")
    def _recipe(self) -> TrainConfig:
        if self.scheduler == "step" and not self.milestones:
            raise ValueError(
                "train.scheduler=step needs train.milestones, the epochs after which lr *= train.gamma, e.g. [30, 40]"
            )
        if self.milestones and sorted(self.milestones) != list(self.milestones):
            raise ValueError(f"train.milestones must increase (got {self.milestones})")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ValueError("train.nesterov needs train.optimizer=sgd and train.momentum > 0")
        bad = {k: v for k, v in self.unfreeze_schedule.items() if v < 0}
        if bad:
            raise ValueError(f"train.unfreeze_schedule: epochs must be >= 0 (got {bad})")
        return self


class EvalConfig(_Section):
    """Validation during training and ``vidrec eval`` / ``predict``."""

    subset: str = "val"  # what vidrec eval evaluates
    batch_size: int | None = Field(None, ge=1)  # clips per batch when evaluating; None: 2 × data.batch_size
    views: int = Field(1, ge=1)  # clips per video at test time, averaged (multi-view testing)


class RetrievalConfig(_Section):
    """Contrastive video–text training (``vidrec train`` with ``task: retrieval``)."""

    captions: Path | None = None  # MSR-VTT style JSON; None: the dataset's own captions
    mode: Literal["joint", "merge_only", "prompt_only", "sequential"] = "joint"
    clip_lr: float = Field(1e-5, gt=0)  # lr for the pretrained CLIP towers
    module_lr: float = Field(1e-4, gt=0)  # lr for new modules (merging, prompts, fusion)
    merge_lr: float | None = Field(None, gt=0)  # token merging (TempMe) lr; None: module_lr (seed 003's tempme_lr)
    prompt_lr: float | None = Field(None, gt=0)  # temporal prompts (STOP) lr; None: module_lr (seed 003's stop_lr)
    temperature: float | None = Field(None, gt=0)  # InfoNCE temperature; None: the model's own (CLIP's logit scale)
    learn_temperature: bool = True  # train it (from `temperature` when given, at module_lr) or keep it fixed


# Old keys still read (with a warning) so that older configs and checkpoints load: old → new (None: no longer used).
DEPRECATED_KEYS: dict[tuple[str, str], tuple[str, str] | None] = {
    ("data", "test_views"): ("eval", "views"),
    ("data", "eval_batch_size"): ("eval", "batch_size"),
    ("eval", "topk"): None,  # eval always reports top-1 and top-5
}
# Their old defaults: every checkpoint's config.yaml lists them, so only another value is worth a warning.
_OLD_DEFAULTS: dict[tuple[str, str], Any] = {
    ("data", "test_views"): 1,
    ("data", "eval_batch_size"): None,
    ("eval", "topk"): [1, 5],
}
_warned: set[tuple[str, str]] = set()


def _upgrade_keys(tree: Any) -> Any:
    """Move deprecated keys of a raw config tree to their new place (the new key wins when both are set)."""
    if not isinstance(tree, Mapping):
        return tree
    tree = dict(tree)
    for (sec, key), new in DEPRECATED_KEYS.items():
        old = tree.get(sec)
        if not isinstance(old, Mapping) or key not in old:
            continue
        tree[sec] = {k: v for k, v in old.items() if k != key}
        value = list(old[key]) if isinstance(old[key], (list, tuple)) else old[key]
        if value != _OLD_DEFAULTS[(sec, key)] and (sec, key) not in _warned:  # once per process
            _warned.add((sec, key))
            log.warning(
                "config key %s.%s is deprecated%s",
                sec,
                key,
                f"; use {new[0]}.{new[1]} (read as that this time)" if new else " and not used; remove it",
            )
        if new is not None:
            target = dict(tree.get(new[0]) or {})
            if target.get(new[1]) is None:
                target[new[1]] = old[key]
            tree[new[0]] = target
    return tree


class Config(_Section):
    task: Literal["classification", "retrieval"] = "classification"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)

    @model_validator(mode="before")
    @classmethod
    def _deprecated(cls, data: Any) -> Any:
        return _upgrade_keys(data)

    @model_validator(mode="after")
    def _monitor(self) -> Config:
        """Name the monitored metric for what it is: a retrieval run has no top-1."""
        if self.task == "retrieval" and self.train.monitor == "val_top1":
            self.train.monitor = "val_t2v_r1"
        elif self.task == "classification" and self.train.monitor == "val_t2v_r1":
            raise ValueError(
                "train.monitor=val_t2v_r1 is a retrieval metric; a classification run monitors val_top1 or val_loss"
            )
        return self

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """Builder options: the ``model.*`` keys that are not name/pretrained/weights."""
        return dict(self.model.model_extra or {})

    @property
    def data_options(self) -> dict[str, Any]:
        """Loader options: the ``data.*`` keys that are not common data settings."""
        return dict(self.data.model_extra or {})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------------------------
# layering


def _parse_value(text: str) -> Any:
    """Parse a command-line / env value as YAML (``3``, ``true``, ``[a, b]``, ``null``)."""
    try:
        return yaml.safe_load(text) if text.strip() != "" else ""
    except yaml.YAMLError:
        return text


def _set_path(tree: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    keys = [k for k in dotted.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"{source}: empty key")
    node = tree
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{source}: {dotted}: {k} is a value, not a section")
        node = nxt
    node[keys[-1]] = value


def _deep_merge(base: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in new.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_yaml(path: str | os.PathLike[str], *, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found" + (f" (the _base_ of {_chain[-1]})" if _chain else ""))
    if path.resolve() in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain[list(_chain).index(path.resolve()) :], path.resolve()))
        raise ConfigError(f"{path}: _base_ includes itself ({cycle}); remove the loop")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data:, model:, train:, ...)")
    base = data.pop("_base_", None)  # a config may extend another: a path relative to it, or preset:<name>
    if base:
        if str(base).startswith("preset:"):
            from vidrec.presets import preset_path

            base_path = preset_path(str(base)[len("preset:") :])
        else:
            base_path = path.parent / base
        data = _deep_merge(read_yaml(base_path, _chain=(*_chain, path.resolve())), data)
    return data


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``VIDREC__TRAIN__LR=3e-4`` → ``{"train": {"lr": 3e-4}}`` (keys lower-cased)."""
    environ = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and len(key) > len(ENV_PREFIX):
            dotted = key[len(ENV_PREFIX) :].lower().replace("__", ".")
            _set_path(tree, dotted, _parse_value(value), f"environment variable {key}")
    return tree


def set_overrides(items: Sequence[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set train.lr=3e-4")
        key, value = item.split("=", 1)
        _set_path(tree, key, _parse_value(value), f"--set {item}")
    return tree


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key")
        elif err["type"] == "value_error" and isinstance(err.get("input"), dict):  # a section's check names its keys
            lines.append(str(err["msg"]).removeprefix("Value error, "))
        else:
            lines.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    if len(lines) == 1:
        return f"invalid configuration: {lines[0]}"
    return "invalid configuration:\n  " + "\n  ".join(lines)


def build_config(tree: Mapping[str, Any]) -> Config:
    try:
        return Config.model_validate(dict(tree))
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
    validate: bool = True,
    check_model: bool = True,
) -> Config:
    """Resolve the layers into a :class:`Config`; raise :class:`ConfigError` naming any bad key.

    ``check_model=False`` leaves the ``model.*`` options to be checked when the model is built:
    that check imports the model code (torch), which verbs that build no model must not pay for.
    """
    tree: dict[str, Any] = dict(base or {})
    if path is not None:
        tree = _deep_merge(tree, read_yaml(path))
    env = env_overrides(environ)
    tree = _deep_merge(tree, env)
    tree = _deep_merge(tree, set_overrides(overrides))
    log.debug(
        "config layers: %s, file %s, environment %s, --set %s",
        "a base config" if base else "defaults",
        path or "none",
        sorted(env) or "none",
        list(overrides) or "none",
    )
    cfg = build_config(tree)
    if validate:
        validate_config(cfg, check_model=check_model)
    return cfg


def validate_config(cfg: Config, *, check_model: bool = True) -> None:
    """Check ``model.*`` / ``data.*`` extras against the chosen builder's and loader's options."""
    import inspect

    from vidrec.data.records import check_dataset_name, get_dataset_loader

    if check_model:
        from vidrec.models.registry import check_model_kwargs

        check_model_kwargs(cfg.model.name, cfg.model_kwargs)
    if not cfg.data_options:  # nothing to check against the loader's options: do not import it
        check_dataset_name(cfg.data.dataset)
        return
    loader = get_dataset_loader(cfg.data.dataset)
    params = inspect.signature(loader).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for key in cfg.data_options:
            if key not in params:
                ok = ", ".join(k for k in params if k not in ("root", "split", "strict"))
                raise ConfigError(
                    f"data.{key}: unknown key for dataset {cfg.data.dataset!r}; its options are: {ok or 'none'}"
                )


def absolute_paths(cfg: Config) -> Config:
    """A copy of ``cfg`` whose path-typed keys (``data.root``, ``model.weights``, ...) are absolute.

    Written into run directories and checkpoints, so they mean the same from any working directory.
    Loader options (``data.*`` extras) are left as they are: loaders resolve them against ``data.root``.
    """
    out = cfg.model_copy(deep=True)
    for section_name in type(out).model_fields:
        section = getattr(out, section_name)
        if not isinstance(section, BaseModel):
            continue
        for key in type(section).model_fields:
            value = getattr(section, key)
            if isinstance(value, Path) and not value.is_absolute():
                setattr(section, key, value.expanduser().absolute())
    return out


def config_from_dict(tree: Mapping[str, Any]) -> Config:
    """Rebuild a config written by :meth:`Config.to_dict` (e.g. a checkpoint's config.yaml)."""
    return build_config(tree)
