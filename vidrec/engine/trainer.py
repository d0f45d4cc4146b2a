"""The one trainer for every model, on 🤗 accelerate.

Device selection (CUDA → MPS → CPU), mixed precision (bf16 where supported), gradient
accumulation, AdamW or SGD with warm-up then cosine / step / plateau (:mod:`vidrec.engine.optim`),
label smoothing, gradient clipping, early stopping, stage-wise unfreezing, best/last checkpoints
and exact resume; TensorBoard + ``metrics.jsonl`` (every group's lr, the gradient norm);
tqdm with loss, accuracy and clips/s. Under ``accelerate launch`` / ``torchrun`` the same code
runs data-parallel; only rank 0 writes.

Exact resume: every sample's randomness is a function of (seed, epoch, index) (see
:mod:`vidrec.data.dataset`); the state saved every ``train.checkpoint_every_steps`` optimiser
steps and at each epoch end holds model, optimiser, scheduler, RNG, the position in the epoch and
the epoch's running loss/accuracy sums, so a killed run resumed with ``--resume`` ends with the
same weights and the same ``metrics.jsonl`` as one that never stopped (single process).

``checkpoints/last`` is one directory (weights, config, classes, metrics and ``state/``) written
beside the old one and swapped in with :func:`~vidrec.utils.io.replace_dir`; resume first finishes
a swap that a kill interrupted (:func:`~vidrec.utils.io.recover_dir`). The state is JSON and
safetensors (:mod:`vidrec.engine.state`): accelerate runs the devices, precision and DDP, but its
pickle-based ``save_state`` is not used, so nothing in a run directory is ever unpickled.

This module is the loop; beside it: :mod:`vidrec.engine.accelerator` (device and precision),
:mod:`vidrec.engine.resume` (:class:`TrainerState` and the ``state/`` readers) and
:mod:`vidrec.engine.metrics_log` (``metrics.jsonl`` and TensorBoard, rewound on resume).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vidrec.config import Config
from vidrec.engine.accelerator import make_accelerator, resolve_precision
from vidrec.engine.checkpoint import WEIGHTS, load_state_into, save_checkpoint, unwrap
from vidrec.engine.metrics_log import METRICS_LOG, MetricsLog
from vidrec.engine.optim import LRSchedule, build_optimizer, group_lrs
from vidrec.engine.resume import (
    STATE_DIR,
    STATE_FILE,
    STATE_FORMAT,
    TrainerState,
    load_accelerate_state,
    read_trainer_state,
    restore,
)
from vidrec.engine.state import load_state_dict, rng_state, save_state_dict, set_rng_state
from vidrec.engine.tasks import Task, make_task
from vidrec.errors import CheckpointError, VidrecError
from vidrec.models.base import to_channels_last
from vidrec.utils.io import link_tree, recover_dir, write_json_atomic

log = logging.getLogger(__name__)

# Re-exported: where the run, the tests and the Python API have always found them.
__all__ = [
    "METRICS_LOG",
    "FitResult",
    "StopTraining",
    "Trainer",
    "TrainerState",
    "TrainingDiverged",
    "make_accelerator",
    "read_trainer_state",
    "resolve_precision",
]


class TrainingDiverged(VidrecError):
    """The loss became NaN or infinite."""


class StopTraining(Exception):
    """Raised by a step callback to stop (tests use it to simulate a killed run)."""


@dataclass
class FitResult:
    best_checkpoint: Path
    last_checkpoint: Path
    best_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    train_seconds: float
    substituted: int
    stopped_early: bool


class Trainer:
    """Fit ``model`` on ``train_loader``, validating on ``val_loader`` each epoch.

    Writes into ``out_dir``: ``checkpoints/best``, ``checkpoints/last`` (with ``state/``),
    ``metrics.jsonl``, ``tb/`` (TensorBoard), ``config.yaml``.
    """

    def __init__(
        self,
        cfg: Config,
        model: nn.Module,
        train_loader: DataLoader[Any],
        val_loader: DataLoader[Any] | None,
        classes: list[str],
        out_dir: Path,
        *,
        step_callback: Callable[[TrainerState], None] | None = None,
        progress: bool = True,
        task: Task | None = None,
    ) -> None:
        self.cfg = cfg
        self.classes = classes
        self.out_dir = Path(out_dir)
        self.step_callback = step_callback
        self.progress = progress
        self.accelerator = make_accelerator(cfg, model)
        self.task = task or make_task(cfg, model, len(classes))
        self.optimizer = build_optimizer(cfg, self.task.param_groups(model))
        steps_per_epoch = len(train_loader)
        if cfg.train.max_steps_per_epoch:
            steps_per_epoch = min(steps_per_epoch, cfg.train.max_steps_per_epoch)
        self.steps_per_epoch = steps_per_epoch
        self.train_size = len(getattr(train_loader, "dataset", None) or [])  # data.max_skips is a fraction of this
        opt_steps = math.ceil(steps_per_epoch / cfg.train.accum_steps)
        self.scheduler = LRSchedule(self.optimizer, cfg, steps_per_epoch=opt_steps)
        if cfg.train.scheduler == "plateau" and val_loader is None:
            raise VidrecError(
                f"train.scheduler=plateau follows {cfg.train.monitor}, but there is no validation subset "
                f"({cfg.data.val_subset!r} is empty); use train.scheduler=cosine or step"
            )
        if cfg.train.channels_last:
            to_channels_last(model)
        if cfg.train.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        self.model, self.optimizer, self.train_loader = self.accelerator.prepare(model, self.optimizer, train_loader)
        self.val_loader = self.accelerator.prepare(val_loader) if val_loader is not None else None
        self.state = TrainerState()
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.metrics_log = MetricsLog(self.out_dir)  # metrics.jsonl + tb/, written by rank 0 only
        self._legacy_log = False  # resumed from a format-1 state, whose log is cut back by step

    # ------------------------------------------------------------------ persistence
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def stateful(self) -> dict[str, Any]:
        """What exact resume restores through ``state_dict()`` / ``load_state_dict()``, by file name in ``state/``.

        Anything added here (another scheduler, an EMA of the weights) is saved as JSON + safetensors and
        restored with no other change.
        """
        objs: dict[str, Any] = {"optimizer": self.optimizer, "scheduler": self.scheduler}
        if self.accelerator.scaler is not None:
            objs["scaler"] = self.accelerator.scaler
        return objs

    def save_state(self, metrics: dict[str, Any]) -> None:
        """Write ``checkpoints/last``: weights, config, classes, ``metrics`` and ``state/``, swapped in whole."""
        acc = self.accelerator
        rngs = [rng_state()]
        if acc.num_processes > 1:
            from accelerate.utils import gather_object

            rngs = gather_object(rngs)  # every rank's RNG, in memory
        if self.is_main:

            def write_state(tmp: Path) -> None:
                d = tmp / STATE_DIR
                d.mkdir()
                for name, obj in self.stateful().items():
                    save_state_dict(d, name, obj.state_dict())
                for rank, rng in enumerate(rngs):
                    save_state_dict(d, f"rng_{rank}", rng)
                write_json_atomic(d / STATE_FILE, {"format": STATE_FORMAT, **asdict(self.state)})

            save_checkpoint(
                self.ckpt_dir / "last",
                model=self.model,
                cfg=self.cfg,
                classes=self.classes,
                metrics=metrics,
                state=write_state,
            )
        acc.wait_for_everyone()

    def load_state(self, checkpoint: Path) -> None:
        """Restore what :meth:`save_state` wrote into ``checkpoint`` (``checkpoints/last`` or an ``epoch_NNNN``)."""
        checkpoint = Path(checkpoint)
        if self.is_main:
            recover_dir(checkpoint)  # finish a swap that a kill interrupted
        self.accelerator.wait_for_everyone()
        d = checkpoint / STATE_DIR
        path = d / STATE_FILE
        data = read_trainer_state(checkpoint)
        fmt = data.get("format")
        if fmt == STATE_FORMAT:
            load_state_into(self.model, checkpoint / WEIGHTS, source=str(checkpoint))
            for name, obj in self.stateful().items():
                restore(obj, load_state_dict(d, name), d / f"{name}.json", name)
            rng = f"rng_{self.accelerator.process_index}"
            rng = rng if (d / f"{rng}.json").is_file() else "rng_0"
            set_rng_state(load_state_dict(d, rng), source=str(d / f"{rng}.json"))
        elif fmt is None:
            load_accelerate_state(d, self.model, self.stateful(), self.accelerator.process_index)
        else:
            raise CheckpointError(f"{path}: state format {fmt!r}; this vidrec reads format {STATE_FORMAT}")
        self.state = TrainerState.from_json(data, source=str(path))
        self._legacy_log = "log_lines" not in data
        log.info("resuming from %s at epoch %d, step %d", checkpoint, self.state.epoch + 1, self.state.step_in_epoch)

    def rewind_log(self, source: Path | None = None) -> None:
        """Cut ``metrics.jsonl`` back to what was logged when the state was saved (the rest is logged again).

        ``source``: the log to take the lines from when the run continues in another directory.
        TensorBoard hides events from the saved step on (``purge_step``); the kept records of that
        step are written to it again.
        """
        if not self.is_main:
            return
        st = self.state  # a format-1 state has no line count: its log is kept up to its step
        st.log_lines = self.metrics_log.rewind(
            source, lines=st.log_lines, step=st.global_step, by_step=self._legacy_log
        )

    def _log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        self.metrics_log.append(record, step=self.state.global_step)
        self.state.log_lines += 1

    def _snapshot_epoch(self, source: Path | None = None) -> None:
        """``checkpoints/epoch_NNNN`` (``train.keep_checkpoints``): ``source`` (last) at an epoch end, hard-linked."""
        keep, st = self.cfg.train.keep_checkpoints, self.state
        if not keep or not self.is_main or st.step_in_epoch or st.epoch == 0:
            return
        dst = self.ckpt_dir / f"epoch_{st.epoch:04d}"
        source = source or self.ckpt_dir / "last"
        if not dst.is_dir() and source.resolve() != dst.resolve():
            link_tree(source, dst)
        if keep != "all":
            import re
            import shutil

            snaps = sorted((int(p.name[6:]), p) for p in self.ckpt_dir.iterdir() if re.fullmatch(r"epoch_\d+", p.name))
            for _, p in snaps[: max(0, len(snaps) - int(keep))]:
                shutil.rmtree(p)

    # ------------------------------------------------------------------ loop
    def fit(self, *, resume_from: Path | None = None, log_source: Path | None = None) -> FitResult:
        """Train to ``train.epochs`` (or an early stop); ``resume_from``: a checkpoint with ``state/`` to continue.

        ``log_source``: the ``metrics.jsonl`` whose first lines continue here, when the run resumes from
        another run's checkpoint into a new directory.
        """
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        set_seed(cfg.train.seed)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if resume_from is not None:
            self.load_state(resume_from)
            self.rewind_log(log_source)
            self._snapshot_epoch(resume_from)  # a kill between last/ and its epoch copy, or another run's epoch
        st = self.state
        stopped_early = False
        while st.epoch < cfg.train.epochs and not st.finished:
            self._train_epoch()
            metrics = self._validate()
            self.scheduler.step_epoch(metrics)
            st.history.append(metrics)
            self._log({"type": "epoch", **metrics})
            improved = self._is_improvement(metrics)
            if improved:
                st.best, st.best_epoch, st.bad_epochs = metrics[cfg.train.monitor], st.epoch, 0
                if self.is_main:
                    save_checkpoint(
                        self.ckpt_dir / "best", model=self.model, cfg=cfg, classes=self.classes, metrics=metrics
                    )
            else:
                st.bad_epochs += 1
            st.epoch += 1
            st.step_in_epoch = st.epoch_seen = st.epoch_correct = 0
            st.epoch_loss_sum = 0.0
            if cfg.train.early_stop_patience and st.bad_epochs >= cfg.train.early_stop_patience:
                log.info("early stop: no improvement in %s for %d epochs", cfg.train.monitor, st.bad_epochs)
                stopped_early = True
                st.finished = True
            self.save_state(metrics)
            self._snapshot_epoch()
        self.metrics_log.close()
        best = self.ckpt_dir / "best"
        best_metrics = json.loads((best / "metrics.json").read_text()) if (best / "metrics.json").is_file() else {}
        return FitResult(
            best, self.ckpt_dir / "last", best_metrics, st.history, st.train_seconds, st.substituted, stopped_early
        )

    def _is_improvement(self, metrics: dict[str, Any]) -> bool:
        key = self.cfg.train.monitor
        if key not in metrics or metrics[key] is None:
            return self.state.best is None
        if self.state.best is None:
            return True
        return metrics[key] < self.state.best if key == "val_loss" else metrics[key] > self.state.best

    def _train_epoch(self) -> None:
        cfg, st, acc = self.cfg, self.state, self.accelerator
        model = self.model
        model.train()
        self.task.on_epoch_start(unwrap(model), st.epoch)
        _set_epoch(self.train_loader, st.epoch)
        loader = self.train_loader
        start = st.step_in_epoch
        if start:
            loader = acc.skip_first_batches(self.train_loader, start)
        n = self.steps_per_epoch
        bar = tqdm(
            total=n,
            initial=start,
            desc=f"epoch {st.epoch + 1}/{cfg.train.epochs}",
            disable=not (self.progress and self.is_main),
            unit="batch",
            dynamic_ncols=True,
            leave=False,
        )
        # the epoch's sums carry over a mid-epoch resume; the speed counts only this process's clips
        seen, correct, loss_sum = (st.epoch_seen, st.epoch_correct, st.epoch_loss_sum) if start else (0, 0, 0.0)
        norm_sum, norm_count = (st.epoch_grad_norm_sum, st.epoch_grad_norms) if start else (0.0, 0)
        seen_here, t0 = 0, time.perf_counter()
        # gradient norms since the last metrics line (carried over a mid-epoch resume, like the sums above)
        grad_norms = [float(x) for x in st.line_grad_norms if isinstance(x, (int, float))] if start else []
        stand_ins = 0  # clips of this epoch (since a resume) that came from a stand-in video: theirs failed to decode
        t_mark = t0  # start of the not-yet-counted training time
        accum = cfg.train.accum_steps
        for i, batch in enumerate(loader, start=start):
            if i >= n:
                break
            sync = (i + 1) % accum == 0 or (i + 1) == n
            ctx = acc.no_sync(model) if not sync else _nullcontext()
            with ctx:
                with acc.autocast():
                    loss, logits = self.task.loss(model, batch)
                if not torch.isfinite(loss):
                    hint = "lower train.lr or check the data"
                    if acc.mixed_precision != "no":
                        hint += f" (it ran in {acc.mixed_precision}: try train.precision=no)"
                    raise TrainingDiverged(
                        f"the loss became {loss.item()} at epoch {st.epoch + 1}, step {i + 1}; {hint}"
                    )
                acc.backward(loss / accum)
            if sync:
                # the norm before clipping; max_norm=inf only measures it (and unscales fp16 gradients)
                norm = acc.clip_grad_norm_(model.parameters(), cfg.train.grad_clip or math.inf)
                if norm is not None:
                    grad_norms.append(float(norm))
                    norm_sum, norm_count = norm_sum + grad_norms[-1], norm_count + 1
                self.optimizer.step()
                st.last_lrs = [float(g["lr"]) for g in self.optimizer.param_groups]  # used by this step, logged
                self.scheduler.step_batch()
                self.optimizer.zero_grad(set_to_none=True)
                st.global_step += 1
            b = batch["label"].shape[0]
            seen += b
            seen_here += b
            correct += int((logits.argmax(1) == batch["label"]).sum()) if logits is not None else 0
            loss_sum += float(loss.detach()) * b
            subs = int(batch["substituted"].sum()) if "substituted" in batch else 0
            st.substituted += subs
            stand_ins += subs
            self._check_stand_ins(stand_ins)
            st.step_in_epoch = i + 1
            st.epoch_seen, st.epoch_correct, st.epoch_loss_sum = seen, correct, loss_sum
            st.epoch_grad_norm_sum, st.epoch_grad_norms = norm_sum, norm_count
            st.line_grad_norms = list(grad_norms)
            elapsed = time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix(
                loss=f"{loss_sum / seen:.3f}",
                acc=f"{correct / seen:.3f}",
                clips_s=f"{seen_here / max(elapsed, 1e-9):.1f}",
            )
            if (i + 1) % cfg.train.log_every == 0 or (i + 1) == n:
                record = {
                    "type": "train",
                    "epoch": st.epoch + 1,
                    "step": st.global_step,
                    "train_loss": loss_sum / seen,
                    "train_acc": correct / seen,
                    **self._lrs(),
                    "clips_per_s": seen_here / max(elapsed, 1e-9),
                }
                if grad_norms:
                    record["grad_norm"] = sum(grad_norms) / len(grad_norms)
                    grad_norms.clear()
                    st.line_grad_norms = []
                self._log(record)
            if (
                sync
                and cfg.train.checkpoint_every_steps
                and st.global_step % cfg.train.checkpoint_every_steps == 0
                and (i + 1) < n
            ):
                now = time.perf_counter()
                st.train_seconds += now - t_mark
                self.save_state(
                    {
                        "epoch": st.epoch + 1,
                        "step": st.global_step,
                        "partial_epoch": True,
                        "train_loss": loss_sum / seen,
                        "train_acc": correct / seen,
                    }
                )
                t_mark = time.perf_counter()
            if self.step_callback is not None:
                self.step_callback(st)
        bar.close()
        st.train_seconds += time.perf_counter() - t_mark
        self._epoch_train = {
            "train_loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "train_clips_per_s": seen_here / max(time.perf_counter() - t0, 1e-9),
        }
        if norm_count:
            self._epoch_train["train_grad_norm"] = norm_sum / norm_count

    def _lrs(self) -> dict[str, float]:
        """``lr`` (the first group's) and ``lr/<group>`` as used by the last optimiser step (kept in the
        state, so a resumed run logs what an uninterrupted one would); before any step, the current ones."""
        last = self.state.last_lrs
        ok = len(last) == len(self.optimizer.param_groups) and all(isinstance(x, (int, float)) for x in last)
        lrs = group_lrs(self.optimizer, last if ok else None)
        return {"lr": next(iter(lrs.values())), **lrs}

    def _check_stand_ins(self, stand_ins: int) -> None:
        """Stop once more than ``data.max_skips`` of the training subset came from stand-in videos."""
        if not stand_ins or not self.train_size:
            return
        share = self.train_size / max(self.accelerator.num_processes, 1)  # this process's part of the subset
        if stand_ins > self.cfg.data.max_skips * share:
            raise VidrecError(
                f"{stand_ins} training clips this epoch came from stand-ins because their own videos failed to decode "
                f"(more than data.max_skips={self.cfg.data.max_skips:g} of {int(share)} clips); "
                "the warnings above name the files. Fix or remove them, or raise data.max_skips."
            )

    def _validate(self) -> dict[str, Any]:
        st = self.state
        metrics: dict[str, Any] = {"epoch": st.epoch + 1, "step": st.global_step, **getattr(self, "_epoch_train", {})}
        metrics.update(self._lrs())
        metrics["train_seconds"] = st.train_seconds
        if self.val_loader is None:
            return metrics
        metrics.update(
            self.task.validate(self.model, self.val_loader, accelerator=self.accelerator, progress=self.progress)
        )
        if self.is_main:
            log.info(
                "epoch %d: train_loss %.4f train_acc %.3f | val_loss %.4f val_top1 %.3f val_top5 %.3f",
                st.epoch + 1,
                metrics.get("train_loss", float("nan")),
                metrics.get("train_acc", float("nan")),
                metrics.get("val_loss", float("nan")),
                metrics.get("val_top1", float("nan")),
                metrics.get("val_top5", float("nan")),
            )
        return metrics


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def _set_epoch(loader: Any, epoch: int) -> None:
    """Tell the epoch to whichever sampler the (possibly accelerate-wrapped) loader uses."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    for obj in (
        getattr(loader, "sampler", None),
        getattr(getattr(loader, "batch_sampler", None), "sampler", None),
        getattr(getattr(getattr(loader, "batch_sampler", None), "batch_sampler", None), "sampler", None),
    ):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
