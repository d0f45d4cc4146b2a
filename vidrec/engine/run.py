"""High-level jobs behind the CLI verbs: train from a config, evaluate a checkpoint.

These only wire registered parts together (data loader → dataset → model → trainer); each is
also the Python API (``vidrec.engine.run.train(cfg)``).
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from vidrec.config import Config, absolute_paths
from vidrec.data.build import build_dataset, build_loader, load_recordset, train_records
from vidrec.data.dataset import CaptionClipDataset, VideoClipDataset
from vidrec.engine.distributed import main_process_first

# re-exported: the Python API (docs/usage.md) evaluates a checkpoint from here
from vidrec.engine.evaluate import EvalOutcome, eval_dataset, evaluate_checkpoint, load_subset_records  # noqa: F401
from vidrec.engine.trainer import METRICS_LOG, FitResult, Trainer, TrainerState, read_trainer_state
from vidrec.errors import VidrecError
from vidrec.models.base import input_spec_of
from vidrec.models.registry import create_model
from vidrec.utils.io import check_writable, link_tree, recover_dir, write_text_atomic

log = logging.getLogger(__name__)


def model_from_config(cfg: Config, num_classes: int, *, with_weights: bool = True) -> nn.Module:
    """``cfg.model`` for ``num_classes`` through :func:`vidrec.models.create_model`, with its hub
    (``pretrained``) or local (``weights``) weights; ``with_weights=False`` builds the bare architecture
    (resume: the saved state replaces the weights, so nothing is fetched again)."""
    return create_model(
        cfg.model.name,
        num_classes=num_classes,
        pretrained=cfg.model.pretrained and with_weights,
        weights=cfg.model.weights if with_weights else None,
        **cfg.model_kwargs,
    )


def check_out_dir(out_dir: Path, *, resume: bool) -> None:
    """Refuse to write a new run over an existing one, or into a path that cannot be a folder (nothing is touched)."""
    check_writable(out_dir, what="--out", folder=True)
    marker = [p for p in (out_dir / METRICS_LOG, out_dir / "checkpoints") if p.exists()]
    if marker and not resume:
        raise VidrecError(
            f"{out_dir} already holds a training run ({marker[0].name}). Use --resume to continue it, "
            "or choose another --out. Nothing was changed."
        )


@contextmanager
def run_log(path: Path) -> Iterator[None]:
    """Copy what the console log shows (vidrec at INFO, libraries' warnings) into ``path`` (appending)."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    except (VidrecError, KeyboardInterrupt) as exc:
        msg = f"stopped: {exc}" if isinstance(exc, VidrecError) else "interrupted; continue with --resume"
        handler.emit(
            logging.makeLogRecord({"name": "vidrec", "levelname": "ERROR", "levelno": logging.ERROR, "msg": msg})
        )
        raise
    finally:
        root.removeHandler(handler)
        handler.close()


@dataclass
class TrainOutcome:
    fit: FitResult
    classes: list[str]
    out_dir: Path


def resume_plan(out_dir: Path, *, resume: bool, resume_from: str | Path | None) -> tuple[Path | None, Path | None]:
    """(checkpoint to resume from, metrics.jsonl whose head continues the log) for ``--resume`` / ``--resume-from``.

    ``--resume-from`` a checkpoint of the run in ``out_dir`` continues that run, unless the run has
    already trained past it (two histories would mix: branch into a new ``--out`` instead); a
    checkpoint of another run starts a new run in ``out_dir`` from its state, with its log so far.
    """
    if resume_from is None:
        if not resume:
            check_out_dir(out_dir, resume=False)
            return None, None
        check_out_dir(out_dir, resume=True)
        last = out_dir / "checkpoints" / "last"
        recover_dir(last)
        read_trainer_state(last)
        return last, None
    src = Path(resume_from).expanduser().absolute()
    if not src.is_dir():
        raise VidrecError(
            f"--resume-from {resume_from}: no such checkpoint directory (e.g. RUN/checkpoints/epoch_0007)"
        )
    recover_dir(src)
    state = read_trainer_state(src)
    src_run = src.parent.parent if src.parent.name == "checkpoints" else None
    if src_run is not None and src_run.resolve() == out_dir.resolve():
        last = out_dir / "checkpoints" / "last"
        if recover_dir(last) is not None and last.resolve() != src.resolve() and (last / "state").is_dir():
            latest = read_trainer_state(last)
            if latest.get("global_step", 0) > state.get("global_step", 0):
                raise VidrecError(
                    f"{out_dir} has trained past {src.name} (its last state is at epoch {latest.get('epoch')}, step "
                    f"{latest.get('global_step')}); continuing from {src.name} there would mix two histories. "
                    f"Pass --out NEW_DIR to start a new run from it, or use --resume to continue the latest state."
                )
        return src, None
    check_out_dir(out_dir, resume=False)
    log_source = src_run / METRICS_LOG if src_run is not None and (src_run / METRICS_LOG).is_file() else None
    return src, log_source


def train(
    cfg: Config,
    *,
    resume: bool = False,
    resume_from: str | Path | None = None,
    progress: bool = True,
    step_callback: Callable[[TrainerState], None] | None = None,
) -> TrainOutcome:
    """Train ``cfg.model`` on ``cfg.data`` into ``cfg.train.out_dir``.

    ``resume``: continue the run there from ``checkpoints/last``; ``resume_from``: continue from any
    checkpoint with a ``state/`` (``checkpoints/epoch_0007``). The run directory gets the resolved
    config (absolute paths), ``metrics.jsonl``, ``tb/``, ``train.log`` and ``checkpoints/``.
    """
    cfg = absolute_paths(cfg)
    if cfg.data.root is None and cfg.data.dataset == "synthetic":
        cfg.data.root = cfg.train.out_dir / "data"
    out_dir = Path(cfg.train.out_dir)
    # under a launcher, rank 0 checks the run and finishes a swap a kill interrupted before the others look
    with main_process_first(cpu=cfg.train.device == "cpu") as main:
        source, log_source = resume_plan(out_dir, resume=resume, resume_from=resume_from)
        if main:  # only rank 0 writes
            out_dir.mkdir(parents=True, exist_ok=True)
            if source is not None and source.parent.parent.resolve() != out_dir.resolve():
                _carry_best(source, out_dir)
    with run_log(out_dir / "train.log"):
        return _train(cfg, out_dir, source, log_source, progress=progress, step_callback=step_callback)


def _carry_best(source: Path, out_dir: Path) -> None:
    """A run started from another run's checkpoint keeps that run's best so far, when it is from before it."""
    best = source.parent / "best"
    try:
        epoch = json.loads((best / "metrics.json").read_text(encoding="utf-8")).get("epoch")
    except (OSError, ValueError, AttributeError):
        return
    if epoch is not None and read_trainer_state(source).get("best_epoch", -1) + 1 == epoch:
        link_tree(best, out_dir / "checkpoints" / "best")


def _train(
    cfg: Config,
    out_dir: Path,
    source: Path | None,
    log_source: Path | None,
    *,
    progress: bool,
    step_callback: Callable[[TrainerState], None] | None,
) -> TrainOutcome:
    torch.manual_seed(cfg.train.seed)
    with main_process_first(cpu=cfg.train.device == "cpu") as main:  # rank 0 writes a generated dataset first
        rs = load_recordset(cfg)
    for p in rs.problems[:20]:
        log.warning("dataset: %s", p)
    classes = rs.classes
    model = model_from_config(cfg, len(classes), with_weights=source is None)
    spec = input_spec_of(model)
    train_ds: VideoClipDataset | CaptionClipDataset
    val_ds: VideoClipDataset | CaptionClipDataset | None
    if cfg.task == "retrieval":  # video–caption pairs (see vidrec.engine.retrieval)
        from vidrec.engine.retrieval import build_retrieval_datasets

        train_ds, val_ds = build_retrieval_datasets(cfg, rs, spec)
    else:
        train_ds = build_dataset(cfg, train_records(cfg, rs), classes, spec, train=True, recordset=rs)
        val_records = rs.subsets.get(cfg.data.val_subset) or []
        val_ds = build_dataset(cfg, val_records, classes, spec, train=False, recordset=rs) if val_records else None
    train_loader = build_loader(cfg, train_ds, train=True)
    val_loader = build_loader(cfg, val_ds, train=False) if val_ds is not None else None
    if main:
        write_text_atomic(out_dir / "config.yaml", cfg.to_yaml())
    trainer = Trainer(
        cfg, model, train_loader, val_loader, classes, out_dir, step_callback=step_callback, progress=progress
    )
    acc = trainer.accelerator
    log.info(
        "training %s on %s: %d train / %d val videos, %d classes, device %s, precision %s, %d process%s%s",
        cfg.model.name,
        cfg.data.dataset,
        len(train_ds),
        len(val_ds) if val_ds else 0,
        len(classes),
        acc.device,
        acc.mixed_precision,
        acc.num_processes,
        "es" if acc.num_processes > 1 else "",
        f" ({acc.distributed_type.value.lower()}, batch {cfg.data.batch_size} per process, "
        f"{cfg.data.batch_size * acc.num_processes * cfg.train.accum_steps} per optimiser step)"
        if acc.num_processes > 1
        else "",
    )
    fit = trainer.fit(resume_from=source, log_source=log_source)
    if trainer.is_main and (out_dir / "metrics.jsonl").is_file():
        from vidrec.report.plots import training_curves_png

        training_curves_png(out_dir / "metrics.jsonl", out_dir / "training_curves.png")
    if fit.substituted:
        log.warning(
            "%d training clips came from a stand-in video because their own failed to decode (see warnings above)",
            fit.substituted,
        )
    return TrainOutcome(fit=fit, classes=classes, out_dir=out_dir)
