"""What exact resume keeps: the trainer's counters (:class:`TrainerState`) and the layout of a checkpoint's
``state/`` directory, with its readers (the current JSON + safetensors format, and the pickles accelerate's
``save_state`` wrote before it, read with ``weights_only=True``). The trainer writes and restores it
(:meth:`~vidrec.engine.trainer.Trainer.save_state`, :meth:`~vidrec.engine.trainer.Trainer.load_state`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from vidrec.engine.checkpoint import WEIGHTS, load_state_into
from vidrec.engine.state import set_rng_state
from vidrec.errors import CheckpointError, VidrecError
from vidrec.utils.io import torch_load_safely

STATE_DIR = "state"
STATE_FILE = "trainer_state.json"
STATE_FORMAT = 2  # 1 (no "format" key): accelerate's save_state files, read with weights_only=True


@dataclass
class TrainerState:
    epoch: int = 0  # current epoch (0-based)
    step_in_epoch: int = 0  # micro-batches already done in `epoch`
    global_step: int = 0  # optimiser steps
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    substituted: int = 0
    finished: bool = False
    # the epoch's running sums so far, so the record of an epoch resumed mid-way covers all of it
    epoch_seen: int = 0
    epoch_correct: int = 0
    epoch_loss_sum: float = 0.0
    epoch_grad_norm_sum: float = 0.0  # gradient norms before clipping, summed over the epoch's optimiser steps
    epoch_grad_norms: int = 0
    last_lrs: list[float] = field(default_factory=list)  # each group's lr in the last optimiser step (logged)
    line_grad_norms: list[float] = field(default_factory=list)  # gradient norms since the last metrics line
    log_lines: int = 0  # lines in metrics.jsonl when the state was saved: a resume cuts the log back to them

    @classmethod
    def from_json(cls, data: Any, *, source: str) -> TrainerState:
        """Rebuild from ``trainer_state.json``, checking every field's type (unknown keys are ignored)."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: expected a JSON object")
        kw: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name not in data:
                continue
            v, default = data[name], getattr(cls(), name)
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            ok = (
                (isinstance(default, bool) and isinstance(v, bool))
                or (type(default) is int and number and isinstance(v, int))
                or (isinstance(default, float) and number)
                or (isinstance(default, list) and isinstance(v, list))
                or (name == "best" and (v is None or number))
            )
            if not ok:
                raise CheckpointError(f"{source}: {name} has the wrong type ({type(v).__name__})")
            kw[name] = v
        return cls(**kw)


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """``state/trainer_state.json`` of a checkpoint (after finishing an interrupted swap), or a clear error."""
    checkpoint = Path(checkpoint)
    path = checkpoint / STATE_DIR / STATE_FILE
    if not path.is_file():
        raise VidrecError(
            f"--resume: no resumable state in {checkpoint} (no {STATE_DIR}/{STATE_FILE}). "
            "Start without --resume, or point --out at the run to continue."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    TrainerState.from_json(data, source=str(path))  # type-check every field now, before any work
    return data


def restore(obj: Any, state: Any, source: Path, name: str) -> None:
    """``obj.load_state_dict(state)``, or a :class:`CheckpointError` naming ``source`` when it does not fit."""
    try:
        obj.load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        why = (str(exc).splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"{source}: does not fit this run's {name} ({type(exc).__name__}: {why}); "
            "resume with the configuration the run was started with"
        ) from None


def load_accelerate_state(d: Path, model: nn.Module, stateful: dict[str, Any], process_index: int) -> None:
    """A state written before format 2, by accelerate's ``save_state``: read with ``weights_only=True``.

    Its pickles (optimizer.bin, custom_checkpoint_0.pkl, random_states_N.pkl) are loaded only when
    they hold nothing but tensors and numbers; anything else is refused, naming the file.
    """
    load_state_into(model, d / WEIGHTS, source=str(d))
    files = {
        "optimizer": d / "optimizer.bin",
        "scheduler": d / "custom_checkpoint_0.pkl",
        "scaler": d / "scaler.pt",
    }
    for name, obj in stateful.items():
        restore(obj, torch_load_safely(files[name], error=CheckpointError), files[name], name)
    rng_file = d / f"random_states_{process_index}.pkl"
    rng_file = rng_file if rng_file.is_file() else d / "random_states_0.pkl"
    r = torch_load_safely(rng_file, error=CheckpointError, allow_numpy=True)
    if not isinstance(r, dict):
        raise CheckpointError(f"{rng_file}: not a set of random states")
    rng = {
        "python": r.get("random_state"),
        "numpy": r.get("numpy_random_seed"),
        "torch": r.get("torch_manual_seed"),
    }
    if "torch_cuda_manual_seed" in r:
        rng["cuda"] = r["torch_cuda_manual_seed"]
    set_rng_state(rng, source=str(rng_file))
