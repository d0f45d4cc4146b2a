"""What the one trainer optimises: a task supplies the loss, the parameter groups, per-epoch
setup and validation; the trainer supplies everything else (devices, precision, accumulation,
schedule, checkpoints, resume, logging).

- :class:`ClassificationTask`: cross-entropy on logits (every classifier in the zoo).
- :class:`RetrievalTask`: symmetric InfoNCE on video–caption pairs (``task: retrieval``).

Each task also evaluates a checkpoint it trained (``Task.evaluate_checkpoint``, found with
:func:`task_type`), so ``vidrec eval`` does not need to know which task a checkpoint is for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import AbstractSet, Any, Iterable, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from vidrec.config import Config
from vidrec.engine.checkpoint import unwrap
from vidrec.engine.evaluate import evaluate_model
from vidrec.models.base import input_spec_of
from vidrec.video.transforms import VideoNormalize

log = logging.getLogger(__name__)


@dataclass
class CheckpointReport:
    """A checkpoint's evaluation: ``metrics`` (``metrics.json``, what ``vidrec eval --json`` prints), ``text`` (what
    it prints otherwise) and ``out_dir``, the folder with the report's files."""

    metrics: dict[str, Any]
    text: str
    out_dir: Path


class Task(Protocol):
    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]: ...

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None: ...

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(loss, logits or None); logits give the running train accuracy."""
        ...

    def validate(
        self, model: nn.Module, loader: DataLoader[Any], *, accelerator: Any, progress: bool
    ) -> dict[str, Any]:
        """Metrics with at least the task's monitor (``val_top1``, ``val_t2v_r1``) and ``val_loss`` where defined."""
        ...


def decay_groups(
    params: Iterable[tuple[str, nn.Parameter]],
    *,
    lr: float,
    weight_decay: float,
    skip: AbstractSet[str] = frozenset(),
    name: str = "params",
) -> list[dict[str, Any]]:
    """Two groups called ``name``: with weight decay, and without it for biases, norms and other 1-d
    parameters or names in ``skip``."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for pname, p in params:
        (decay if p.ndim > 1 and pname not in skip and not pname.endswith(".bias") else no_decay).append(p)
    return [
        g
        for g in (
            {"params": decay, "weight_decay": weight_decay, "lr": lr, "name": name},
            {"params": no_decay, "weight_decay": 0.0, "lr": lr, "name": name},
        )
        if g["params"]
    ]


def batch_normalizer(cfg: Config, model: nn.Module) -> VideoNormalize:
    """The per-batch uint8 → float normalisation for ``model`` (config mean/std, else the model's)."""
    from vidrec.data.build import build_normalizer

    return build_normalizer(cfg, input_spec_of(unwrap(model)))


class ClassificationTask:
    """Cross-entropy with label smoothing; stage-wise unfreezing of ``backbone_parameters()``."""

    def __init__(self, cfg: Config, model: nn.Module, num_classes: int) -> None:
        from vidrec.engine.optim import UnfreezeSchedule
        from vidrec.models.base import named_backbone_parameters

        self.cfg = cfg
        self.num_classes = num_classes
        self.side_keys = tuple(getattr(getattr(model, "input_spec", None), "side_inputs", ()) or ())
        self.normalize = batch_normalizer(cfg, model)
        # only backbone params that are trainable to begin with are toggled (others stay frozen for good)
        self.backbone = [p for p in getattr(model, "backbone_parameters", lambda: iter(()))() if p.requires_grad]
        t = cfg.train
        self.unfreeze = UnfreezeSchedule(
            named_backbone_parameters(model, self.backbone), dict(t.unfreeze_schedule), t.freeze_backbone_epochs
        )
        self._training_parts: list[str] | None = None

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        cfg = self.cfg.train
        bare = unwrap(model)
        skip = set(getattr(bare, "no_weight_decay", set)())
        bb = {id(p) for p in self.backbone}
        named = list(bare.named_parameters())
        head = decay_groups(
            [(n, p) for n, p in named if id(p) not in bb],
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            skip=skip,
            name="head",
        )
        body = decay_groups(
            [(n, p) for n, p in named if id(p) in bb],
            lr=cfg.lr * cfg.backbone_lr_mult,
            weight_decay=cfg.weight_decay,
            skip=skip,
            name="backbone",
        )
        return head + body

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        parts = self.unfreeze.apply(epoch)
        if parts != self._training_parts and self.unfreeze.named:
            log.info("epoch %d: backbone parts training: %s", epoch + 1, ", ".join(parts) or "none (frozen)")
        self._training_parts = parts

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        side = {k: batch[k] for k in self.side_keys if k in batch}
        logits = model(self.normalize(batch["video"]), **side)  # uint8 batch → normalised float, on its device
        loss = F.cross_entropy(logits.float(), batch["label"], label_smoothing=self.cfg.train.label_smoothing)
        return loss, logits

    def validate(
        self, model: nn.Module, loader: DataLoader[Any], *, accelerator: Any, progress: bool
    ) -> dict[str, Any]:
        res = evaluate_model(
            model,
            loader,
            num_classes=self.num_classes,
            accelerator=accelerator,
            side_keys=self.side_keys,
            progress=progress,
            desc="validate",
            normalize=self.normalize,
        )
        return {
            "val_loss": res.loss,
            "val_top1": res.top1,
            "val_top5": res.top5,
            "val_mean_class_acc": res.mean_class_acc,
            "val_videos": int(res.labels.numel()),
            "val_clips": res.num_clips,
        }

    @staticmethod
    def evaluate_checkpoint(
        checkpoint: str | Path,
        out_dir: str | Path,
        *,
        cfg: Config | None = None,
        subset: str | None = None,
        views: int | None = None,
        progress: bool = True,
        device: str = "auto",
        batch_size: int | None = None,
        workers: int | None = None,
    ) -> CheckpointReport:
        """Top-1/5, mean class accuracy, per-class table and confusion figures of ``checkpoint`` on ``subset``
        (default ``eval.subset``), written to ``out_dir`` (:func:`~vidrec.engine.evaluate.evaluate_checkpoint`)."""
        from vidrec.engine.evaluate import evaluate_checkpoint
        from vidrec.report.evaluation import classification_eval_text, write_checkpoint_report

        outcome = evaluate_checkpoint(
            checkpoint,
            cfg=cfg,
            subset=subset,
            views=views,
            progress=progress,
            device=device,
            batch_size=batch_size,
            workers=workers,
        )
        summary = write_checkpoint_report(outcome, out_dir)
        sub = subset or (cfg or outcome.checkpoint.cfg).eval.subset
        return CheckpointReport(summary, classification_eval_text(outcome, summary, out_dir, sub), Path(out_dir))


class RetrievalTask:
    """Contrastive video–text training; ``retrieval.mode`` picks what trains (see :mod:`vidrec.engine.retrieval`)."""

    def __init__(self, cfg: Config, model: nn.Module) -> None:
        from vidrec.engine.retrieval import fixed_temperature, init_temperature

        if cfg.train.unfreeze_schedule or cfg.train.freeze_backbone_epochs:
            from vidrec.errors import ConfigError

            raise ConfigError(
                "train.unfreeze_schedule / freeze_backbone_epochs apply to classification; "
                "retrieval chooses what trains with retrieval.mode"
            )
        self.cfg = cfg
        self.normalize = batch_normalizer(cfg, model)
        self.temperature = fixed_temperature(cfg)
        init_temperature(model, cfg)

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        from vidrec.engine.retrieval import retrieval_param_groups

        return retrieval_param_groups(model, self.cfg)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        bare = unwrap(model)
        bare.set_training_mode(self.cfg.retrieval.mode, epoch=epoch, epochs=self.cfg.train.epochs)  # type: ignore[operator]
        bare.temperature_parameter().requires_grad_(self.cfg.retrieval.learn_temperature)  # type: ignore[operator]

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        from vidrec.engine.retrieval import retrieval_step

        return retrieval_step(
            model, {**batch, "video": self.normalize(batch["video"])}, temperature=self.temperature
        ), None

    def validate(
        self, model: nn.Module, loader: DataLoader[Any], *, accelerator: Any, progress: bool
    ) -> dict[str, Any]:
        from vidrec.engine.retrieval import evaluate_retrieval

        r = evaluate_retrieval(
            model, loader, accelerator=accelerator, temperature=self.temperature, normalize=self.normalize
        )
        metrics = {f"val_{k}": v for k, v in r.items()}  # val_t2v_r1 is what train.monitor follows by default
        log.info(
            "val t2v R@1 %.3f R@5 %.3f MdR %.0f | v2t R@1 %.3f (chance %.3f)",
            r["t2v_r1"],
            r["t2v_r5"],
            r["t2v_median_rank"],
            r["v2t_r1"],
            r["chance_r1"],
        )
        return metrics

    @staticmethod
    def evaluate_checkpoint(
        checkpoint: str | Path,
        out_dir: str | Path,
        *,
        cfg: Config | None = None,
        subset: str | None = None,
        views: int | None = None,
        progress: bool = True,
        device: str = "auto",
        batch_size: int | None = None,
        workers: int | None = None,
    ) -> CheckpointReport:
        """Text→video and video→text R@1/5/10, median and mean rank on ``subset``, written to
        ``out_dir/metrics.json``; ``views`` and ``progress`` do not apply (one clip per video)."""
        from vidrec.engine.retrieval import evaluate_retrieval_checkpoint
        from vidrec.report.evaluation import retrieval_eval_text
        from vidrec.utils.io import write_json_atomic

        m = evaluate_retrieval_checkpoint(
            checkpoint, cfg=cfg, subset=subset, device=device, batch_size=batch_size, workers=workers
        )
        write_json_atomic(Path(out_dir) / "metrics.json", m)
        return CheckpointReport(m, retrieval_eval_text(m, out_dir), Path(out_dir))


TASKS: dict[str, type[ClassificationTask] | type[RetrievalTask]] = {
    "classification": ClassificationTask,
    "retrieval": RetrievalTask,
}


def task_type(name: str) -> type[ClassificationTask] | type[RetrievalTask]:
    """The task class of ``cfg.task`` (its ``evaluate_checkpoint`` evaluates a checkpoint trained for it)."""
    return TASKS[name]


def make_task(cfg: Config, model: nn.Module, num_classes: int) -> Task:
    if cfg.task == "retrieval":
        return RetrievalTask(cfg, model)
    return ClassificationTask(cfg, model, num_classes)
