"""High-level jobs behind the CLI verbs: train from a config, evaluate a checkpoint.

These only wire registered parts together (data loader → dataset → model → trainer); each is
also the Python API (``vidrec.engine.run.train(cfg)``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from vidrec.config import Config
from vidrec.data.build import build_dataset, build_loader, build_normalizer, load_dataset
from vidrec.engine.checkpoint import LoadedCheckpoint, load_checkpoint
from vidrec.engine.evaluate import EvalResult, evaluate_model
from vidrec.engine.trainer import FitResult, Trainer, TrainerState
from vidrec.errors import ConfigError, VidrecError
from vidrec.models.registry import build_model, get_model_entry
from vidrec.utils.io import write_text_atomic

log = logging.getLogger(__name__)


def create_model(cfg: Config, num_classes: int, *, with_weights: bool = True) -> nn.Module:
    """Build ``cfg.model`` for ``num_classes``, with hub (``pretrained``) or local (``weights``) weights.

    ``with_weights=False`` builds the bare architecture (resume: the saved state replaces the weights,
    so nothing is fetched again).
    """
    entry = get_model_entry(cfg.model.name)
    kwargs = cfg.model_kwargs
    if cfg.model.pretrained and with_weights:
        if "pretrained" not in entry.accepted_kwargs():
            raise ConfigError(f"model.pretrained: model {cfg.model.name!r} has no known pretrained weights; use model.weights=PATH")
        kwargs["pretrained"] = True
    model = build_model(cfg.model.name, num_classes=num_classes, **kwargs)
    if cfg.model.weights is not None and with_weights:
        from vidrec.models.weights import load_weights

        report = load_weights(model, cfg.model.weights)
        log.info("%s", report)
    return model


def check_out_dir(out_dir: Path, *, resume: bool) -> None:
    """Refuse to write a new run over an existing one (nothing is touched)."""
    marker = [p for p in (out_dir / "metrics.jsonl", out_dir / "checkpoints") if p.exists()]
    if marker and not resume:
        raise VidrecError(
            f"{out_dir} already holds a training run ({marker[0].name}). Use --resume to continue it, "
            "or choose another --out. Nothing was changed."
        )


@dataclass
class TrainOutcome:
    fit: FitResult
    classes: list[str]
    out_dir: Path


def train(
    cfg: Config,
    *,
    resume: bool = False,
    progress: bool = True,
    step_callback: Callable[[TrainerState], None] | None = None,
) -> TrainOutcome:
    """Train ``cfg.model`` on ``cfg.data`` into ``cfg.train.out_dir``."""
    out_dir = Path(cfg.train.out_dir)
    check_out_dir(out_dir, resume=resume)
    torch.manual_seed(cfg.train.seed)
    rs = load_dataset(cfg)
    for p in rs.problems[:20]:
        log.warning("dataset: %s", p)
    classes = rs.classes
    model = create_model(cfg, len(classes), with_weights=not resume)
    spec = model.input_spec  # type: ignore[attr-defined]
    if cfg.task == "retrieval":  # video–caption pairs (see vidrec.engine.retrieval)
        from vidrec.engine.retrieval import build_retrieval_datasets

        train_ds, val_ds = build_retrieval_datasets(cfg, rs, spec)
    else:
        train_ds = build_dataset(cfg, rs.subset(cfg.data.train_subset), classes, spec, train=True, recordset=rs)
        val_records = rs.subsets.get(cfg.data.val_subset) or []
        val_ds = build_dataset(cfg, val_records, classes, spec, train=False, recordset=rs) if val_records else None
    train_loader = build_loader(cfg, train_ds, train=True)
    val_loader = build_loader(cfg, val_ds, train=False) if val_ds is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "config.yaml", cfg.to_yaml())
    trainer = Trainer(cfg, model, train_loader, val_loader, classes, out_dir, step_callback=step_callback, progress=progress)
    log.info(
        "training %s on %s: %d train / %d val videos, %d classes, device %s, precision %s",
        cfg.model.name, cfg.data.dataset, len(train_ds), len(val_ds) if val_ds else 0, len(classes),
        trainer.accelerator.device, trainer.accelerator.mixed_precision,
    )
    fit = trainer.fit(resume=resume)
    if fit.substituted:
        log.warning("%d training clips came from a stand-in video because their own failed to decode (see warnings above)", fit.substituted)
    return TrainOutcome(fit=fit, classes=classes, out_dir=out_dir)


@dataclass
class EvalOutcome:
    result: EvalResult
    classes: list[str]
    checkpoint: LoadedCheckpoint
    video_ids: list[str]
    unreadable: dict[str, str] = field(default_factory=dict)  # video path -> why it could not be read (never scored)


def eval_dataset(ck: LoadedCheckpoint, cfg: Config, records: list[Any], *, views: int, recordset: Any = None) -> Any:
    """The clips ``vidrec eval`` scores: the checkpoint's evaluation view(s), read by the one reader."""
    return build_dataset(cfg, records, ck.classes, ck.model.input_spec, train=False, views=views, recordset=recordset)  # type: ignore[arg-type]


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    cfg: Config | None = None,
    subset: str | None = None,
    views: int | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> EvalOutcome:
    """Evaluate a checkpoint directory on a subset of its dataset (or of ``cfg``'s when given)."""
    ck = load_checkpoint(checkpoint, map_location=device)
    cfg = cfg or ck.cfg
    rs = load_dataset(cfg)
    if rs.classes != ck.classes:
        raise VidrecError(
            f"the checkpoint's {len(ck.classes)} classes differ from dataset {cfg.data.dataset!r}'s {len(rs.classes)}; "
            "evaluate on the dataset it was trained on"
        )
    subset = subset or cfg.eval.subset
    records = rs.subset(subset)
    spec = ck.model.input_spec  # type: ignore[attr-defined]
    n_views = views or cfg.eval.views or cfg.data.test_views
    ds = eval_dataset(ck, cfg, records, views=n_views, recordset=rs)
    loader = build_loader(cfg, ds, train=False, batch_size=cfg.eval.batch_size)
    side = tuple(getattr(spec, "side_inputs", ()) or ())
    res = evaluate_model(ck.model, loader, num_classes=len(ck.classes), side_keys=side, progress=progress, desc=f"eval {subset}",
                         normalize=build_normalizer(cfg, spec))
    ids = [records[i].video_id for i in res.indices.tolist()]
    unreadable = {str(records[i].path): why.removeprefix(f"{records[i].path}: ") for i, why in res.unreadable.items()}
    if unreadable:
        log.warning("%d of %d videos could not be read and were left out of every metric", len(unreadable), len(records))
    return EvalOutcome(result=res, classes=ck.classes, checkpoint=ck, video_ids=ids, unreadable=unreadable)


