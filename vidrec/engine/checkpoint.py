"""A checkpoint is a directory that describes itself::

    best/
      model.safetensors   weights (safetensors: never unpickled)
      config.yaml         the fully resolved config (+ git revision)
      classes.json        ordered class names
      metrics.json        metrics at save time
      state/              optimizer, scheduler, RNG and trainer position, for exact resume (last/ and
                          epoch_NNNN/ only): JSON and safetensors, never a pickle (vidrec.engine.state)

``vidrec predict --checkpoint DIR video.mp4`` needs nothing else. Paths in ``config.yaml`` are
absolute and ``data.generate`` is off, so evaluating a copied checkpoint reads the data where it
was and never writes a dataset under the current directory.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from vidrec.config import Config, absolute_paths, config_from_dict
from vidrec.errors import CheckpointError, ConfigError
from vidrec.utils.io import fresh_tmp_dir, replace_dir, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
CLASSES = "classes.json"
METRICS = "metrics.json"


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


def state_dict_for_save(model: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage: clone tensors that alias each other (tied weights).
    sd = unwrap(model).state_dict()
    seen: dict[int, str] = {}
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        v = v.detach().cpu()
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        out[k] = v.clone().contiguous() if ptr in seen or not v.is_contiguous() else v
        if ptr != -1:
            seen.setdefault(ptr, k)
    return out


def save_checkpoint(
    directory: str | Path,
    *,
    model: nn.Module,
    cfg: Config,
    classes: list[str],
    metrics: dict[str, Any] | None = None,
    state: Callable[[Path], None] | None = None,
) -> Path:
    """Write a checkpoint directory; the previous one at ``directory`` is replaced only when complete.

    ``state(tmp)`` writes the resumable state into the unfinished directory, so weights and state
    are swapped in together (:func:`~vidrec.utils.io.replace_dir`).
    """
    directory = Path(directory)
    tmp = fresh_tmp_dir(directory)
    save_file(state_dict_for_save(model), str(tmp / WEIGHTS), metadata={"format": "pt", "model": cfg.model.name})
    cfg_dict = absolute_paths(cfg).to_dict()
    cfg_dict["data"]["generate"] = False  # a checkpoint reads its data; it never writes a dataset
    cfg_dict["_meta"] = {"git_revision": git_revision(), "vidrec_version": __import__("vidrec").__version__}
    write_text_atomic(tmp / CONFIG, yaml.safe_dump(cfg_dict, sort_keys=False))
    write_json_atomic(tmp / CLASSES, list(classes))
    write_json_atomic(tmp / METRICS, metrics or {})
    if state is not None:
        state(tmp)
    return replace_dir(tmp, directory)


@dataclass
class LoadedCheckpoint:
    model: nn.Module
    cfg: Config
    classes: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path = Path()


def read_checkpoint_meta(directory: str | Path) -> tuple[Config, list[str], dict[str, Any]]:
    """Config, classes and metrics of a checkpoint directory, with clear errors for anything missing."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(
            f"{directory}: no such checkpoint directory. Pass the run's checkpoints/best (or last) folder."
        )
    if directory.is_file():
        raise CheckpointError(
            f"{directory}: a checkpoint is a directory (model.safetensors, config.yaml, classes.json), not a file. "
            "For a bare weights file use --set model.weights=FILE with vidrec train."
        )
    for name in (WEIGHTS, CONFIG, CLASSES):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory}: missing {name}; this is not a complete vidrec checkpoint directory.")
    from vidrec.models.registry import check_model_kwargs

    try:
        tree = yaml.safe_load((directory / CONFIG).read_text(encoding="utf-8"))
        if not isinstance(tree, dict):
            raise ConfigError("expected a mapping of sections")
        tree.pop("_meta", None)
        cfg = config_from_dict(tree)
        check_model_kwargs(cfg.model.name, cfg.model_kwargs)
    except (yaml.YAMLError, UnicodeDecodeError, ConfigError) as exc:
        raise CheckpointError(f"{directory / CONFIG}: {' '.join(str(exc).split())}") from None
    classes = _read_json(directory / CLASSES)
    metrics = _read_json(directory / METRICS) if (directory / METRICS).is_file() else {}
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise CheckpointError(f"{directory / CLASSES}: expected a non-empty JSON list of class names (strings)")
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{directory / METRICS}: expected a JSON object")
    return cfg, classes, metrics


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from None


def load_state_into(model: nn.Module, weights: Path, *, source: str) -> None:
    """Load a safetensors file into ``model`` exactly; name the first mismatched tensor otherwise."""
    try:
        sd = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{weights}: unreadable weights ({exc}). The file may be truncated.") from exc
    own = unwrap(model).state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    for k, v in sd.items():
        if k in own and own[k].shape != v.shape:
            raise CheckpointError(
                f"{source}: tensor {k} has shape {tuple(v.shape)} in the checkpoint "
                f"but {tuple(own[k].shape)} in the model; "
                "the checkpoint belongs to another model or configuration."
            )
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: the checkpoint does not match the model ({len(missing)} missing keys, e.g. {missing[:3]}; "
            f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}); it belongs to another model."
        )
    unwrap(model).load_state_dict(sd, strict=True)


def load_checkpoint(directory: str | Path, *, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model from ``config.yaml`` and load ``model.safetensors`` into it."""
    from vidrec.models.registry import create_model

    directory = Path(directory)
    cfg, classes, metrics = read_checkpoint_meta(directory)
    kwargs = cfg.model_kwargs
    model = create_model(cfg.model.name, num_classes=len(classes), **kwargs)
    load_state_into(model, directory / WEIGHTS, source=str(directory))
    model.to(map_location).eval()
    return LoadedCheckpoint(model=model, cfg=cfg, classes=classes, metrics=metrics, path=directory)
