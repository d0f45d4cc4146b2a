"""Optimiser, learning-rate schedule and stage-wise unfreezing for the one trainer.

Everything here is torch's own: ``torch.optim.AdamW`` / ``SGD`` over named parameter groups, and
``torch.optim.lr_scheduler`` classes composed into one :class:`LRSchedule`::

    warm-up (LinearLR, per optimiser step)  ──►  cosine (CosineAnnealingLR, per step)
                                            ──►  step   (MultiStepLR at epoch milestones, per step)
                                            ──►  plateau (ReduceLROnPlateau on train.monitor, per epoch)
                                            ──►  constant

:class:`LRSchedule` has ``state_dict`` / ``load_state_dict``, so the trainer registers it for
checkpointing and a resumed run continues the schedule exactly where it stopped.

:class:`UnfreezeSchedule` decides, per epoch, which backbone parameters train: parts named in
``train.unfreeze_schedule`` (prefixes of the backbone's parameter names, as in
``model.finetune_layers``: ``layer4``, ``blocks.11``) stay frozen for their own number of epochs,
the rest of the backbone for ``train.freeze_backbone_epochs``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    ReduceLROnPlateau,
    SequentialLR,
)

from vidrec.config import Config
from vidrec.errors import ConfigError
from vidrec.models.base import backbone_parts

log = logging.getLogger(__name__)


def build_optimizer(cfg: Config, groups: list[dict[str, Any]]) -> Optimizer:
    """``train.optimizer`` over ``groups`` (each group carries its own ``lr``, ``weight_decay`` and ``name``)."""
    t = cfg.train
    if not groups or not any(g["params"] for g in groups):
        raise ConfigError("the model has no trainable parameter (check model.finetune_layers / retrieval.mode)")
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov, weight_decay=t.weight_decay)
    return torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay)


def group_lrs(optimizer: Optimizer, lrs: list[float] | None = None) -> dict[str, float]:
    """``{"lr/<group name>": lr}`` for every named group (groups sharing a name share their lr);
    ``lrs``: one value per group instead of the groups' current ones."""
    out: dict[str, float] = {}
    for i, g in enumerate(optimizer.param_groups):
        lr = lrs[i] if lrs is not None and i < len(lrs) else g["lr"]
        out.setdefault(f"lr/{g.get('name') or f'group{i}'}", float(lr))
    return out


class LRSchedule:
    """Warm-up, then ``train.scheduler``; one object to step and to checkpoint.

    ``step_batch()`` after every optimiser step, ``step_epoch(metrics)`` after each validation.
    """

    def __init__(self, optimizer: Optimizer, cfg: Config, *, steps_per_epoch: int) -> None:
        t = cfg.train
        self.kind = t.scheduler
        self.monitor = t.monitor
        opt_steps = max(1, steps_per_epoch)
        total = max(1, opt_steps * t.epochs)
        warm = int(round(t.warmup_epochs * opt_steps))
        warm = warm if warm > 1 else 0  # one warm-up step would be the full lr anyway
        base = [float(g["lr"]) for g in optimizer.param_groups]
        phases: list[LRScheduler] = []
        if warm:
            # factor (k + 1) / warm at optimiser step k: the first step already moves
            phases.append(LinearLR(optimizer, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm - 1))
        main: LRScheduler | None = None
        if self.kind == "cosine":
            main = CosineAnnealingLR(optimizer, T_max=max(1, total - warm), eta_min=min(base) * t.min_lr_ratio)
        elif self.kind == "step":
            steps = [round(m * opt_steps) - warm for m in t.milestones]
            if any(s <= 0 for s in steps):
                raise ConfigError(
                    f"train.milestones {t.milestones}: every milestone must come after the warm-up "
                    f"({t.warmup_epochs} epochs)"
                )
            main = MultiStepLR(optimizer, milestones=steps, gamma=t.gamma)
        if main is not None:
            phases.append(main)
        if len(phases) == 2:
            self.per_step: LRScheduler | None = SequentialLR(optimizer, phases, milestones=[warm])
        else:
            self.per_step = phases[0] if phases else None  # None: constant / plateau without warm-up
        self.plateau: ReduceLROnPlateau | None = None
        if self.kind == "plateau":
            self.plateau = ReduceLROnPlateau(
                optimizer,
                mode="min" if t.monitor == "val_loss" else "max",
                factor=t.gamma,
                patience=t.plateau_patience,
                min_lr=[b * t.min_lr_ratio for b in base],
            )

    def step_batch(self) -> None:
        if self.per_step is not None:
            self.per_step.step()

    def step_epoch(self, metrics: dict[str, Any]) -> None:
        """Plateau: reduce the lr when ``train.monitor`` has not improved for ``plateau_patience`` epochs."""
        if self.plateau is None:
            return
        value = metrics.get(self.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise ConfigError(
                f"train.scheduler=plateau follows {self.monitor}, which this run does not measure "
                "(is there a validation subset?)"
            )
        before = [g["lr"] for g in self.plateau.optimizer.param_groups]
        self.plateau.step(float(value))
        after = [g["lr"] for g in self.plateau.optimizer.param_groups]
        if after != before:
            log.info(
                "plateau: %s did not improve for %d epochs; lr %.3g -> %.3g",
                self.monitor,
                self.plateau.patience + 1,
                before[0],
                after[0],
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "per_step": self.per_step.state_dict() if self.per_step is not None else None,
            "plateau": self.plateau.state_dict() if self.plateau is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # ValueError: the trainer reports it as one line naming the state file
        if not isinstance(state, dict):
            raise ValueError(f"expected the schedule's state, got a {type(state).__name__}")
        if "lr_lambdas" in state:
            raise ValueError(
                "a schedule saved by an older vidrec (one LambdaLR); resume with that version, or start a "
                "new run from the weights with --set model.weights=CHECKPOINT/model.safetensors"
            )
        if "per_step" not in state or "plateau" not in state:
            raise ValueError("not a vidrec learning-rate schedule")
        kinds_differ = (state["per_step"] is None) != (self.per_step is None)
        if kinds_differ or (state["plateau"] is None) != (self.plateau is None):
            raise ValueError(f"not a {self.kind} schedule like this run's")
        if self.per_step is not None:
            self.per_step.load_state_dict(state["per_step"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
        # a state read back from JSON (vidrec.engine.state) has plain dicts where MultiStepLR keeps a Counter
        for sched in [self.per_step, *getattr(self.per_step, "_schedulers", [])]:
            if isinstance(sched, MultiStepLR) and not isinstance(sched.milestones, Counter):
                sched.milestones = Counter({int(k): int(v) for k, v in dict(sched.milestones).items()})


class UnfreezeSchedule:
    """Which backbone parameters train in a given epoch (frozen ones get ``requires_grad=False``).

    ``schedule``: part name (a prefix of the backbone-relative parameter names; the longest match
    wins) → epochs it stays frozen; every other backbone parameter stays frozen for ``default``
    epochs (``train.freeze_backbone_epochs``).
    """

    def __init__(self, named: list[tuple[str, nn.Parameter]], schedule: dict[str, int], default: int) -> None:
        self.named = named
        names = [n for n, _ in named]
        for key in schedule:
            if not any(n == key or n.startswith(key + ".") for n in names):
                parts = ", ".join(backbone_parts(names)) or "none (this model has no trainable backbone)"
                raise ConfigError(
                    f"train.unfreeze_schedule: {key!r} is not a trainable part of the backbone; its parts are: {parts} "
                    "(a deeper prefix such as layer4.1 works too; parts frozen by model.finetune_layers "
                    "cannot be scheduled)"
                )
        keys = sorted(schedule, key=len, reverse=True)
        self.frozen_for: list[int] = []
        for n in names:
            hit = next((k for k in keys if n == k or n.startswith(k + ".")), None)
            self.frozen_for.append(schedule[hit] if hit is not None else default)

    def apply(self, epoch: int) -> list[str]:
        """Set ``requires_grad`` for ``epoch`` (0-based); returns the parts that train."""
        training: list[str] = []
        for (name, p), until in zip(self.named, self.frozen_for):
            on = epoch >= until
            p.requires_grad_(on)
            if on:
                training.append(name)
        return backbone_parts(training)

    def parts_by_epoch(self) -> dict[int, list[str]]:
        """Epoch → parts unfrozen at its start (for the log)."""
        out: dict[int, list[str]] = {}
        for until in sorted(set(self.frozen_for)):
            out[until] = backbone_parts([n for (n, _), u in zip(self.named, self.frozen_for) if u == until])
        return out
