"""The one trainer for every model, on 🤗 accelerate.

Device selection (CUDA → MPS → CPU), mixed precision (bf16 where supported), gradient
accumulation, AdamW with warm-up then cosine, label smoothing, gradient clipping, early stopping,
progressive unfreezing, best/last checkpoints and exact resume; TensorBoard + ``metrics.jsonl``;
tqdm with loss, accuracy and clips/s. Under ``accelerate launch`` / ``torchrun`` the same code
runs data-parallel; only rank 0 writes.

Exact resume: every sample's randomness is a function of (seed, epoch, index) (see
:mod:`vidrec.data.dataset`); the state saved every ``train.checkpoint_every_steps`` optimiser
steps and at each epoch end holds model, optimiser, scheduler, RNG and the position in the
epoch, so a killed run resumed with ``--resume`` ends with the same weights as one that never
stopped (single process).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vidrec.config import Config
from vidrec.engine.checkpoint import save_checkpoint, unwrap
from vidrec.engine.tasks import Task, make_task
from vidrec.errors import VidrecError
from vidrec.utils.io import replace_dir, write_json_atomic

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"


class TrainingDiverged(VidrecError):
    """The loss became NaN or infinite."""


class StopTraining(Exception):
    """Raised by a step callback to stop (tests use it to simulate a killed run)."""


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 instructions (AVX512-BF16 or AMX), where bf16 autocast is ~1.8× faster."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def has_conv3d(model: nn.Module | None) -> bool:
    return model is not None and any(isinstance(m, nn.Conv3d) for m in model.modules())


def resolve_precision(cfg: Config, model: nn.Module | None = None) -> str:
    """``auto``: bf16 on GPUs that support it and on CPUs with native bf16; otherwise fp32.

    Except on the CPU for models with 3D convolutions: bf16 autocast there made the loss NaN at
    random steps (r3d_18/34/50 and r2plus1d_18 on the synthetic set, 5 of 8 runs, while the same runs
    in fp32 and every 2D/transformer model in bf16 trained cleanly), so ``auto`` keeps them in fp32.
    ``train.precision=bf16`` still forces it.
    """
    p = cfg.train.precision
    if p != "auto":
        return p
    if cfg.train.device in ("auto", "cuda") and torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    if cfg.train.device == "mps" or (cfg.train.device == "auto" and torch.backends.mps.is_available()):
        return "no"
    if has_conv3d(model):
        return "no"
    return "bf16" if cpu_has_native_bf16() else "no"


def make_accelerator(cfg: Config, model: nn.Module | None = None) -> Accelerator:
    cpu = cfg.train.device == "cpu"
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise VidrecError("train.device=cuda but no CUDA GPU is visible; use train.device=auto or cpu")
    if cfg.train.device == "mps" and not torch.backends.mps.is_available():
        raise VidrecError("train.device=mps but MPS is not available on this machine; use train.device=auto or cpu")
    # accelerate keeps its state in a process-wide singleton; a second run in the same process (the
    # demo trains two models, the Python API may train many) may ask for another precision.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=resolve_precision(cfg, model), cpu=cpu, step_scheduler_with_optimizer=False)


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


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
        self.optimizer = torch.optim.AdamW(self.task.param_groups(model), lr=cfg.train.lr)
        steps_per_epoch = len(train_loader)
        if cfg.train.max_steps_per_epoch:
            steps_per_epoch = min(steps_per_epoch, cfg.train.max_steps_per_epoch)
        self.steps_per_epoch = steps_per_epoch
        self.train_size = len(getattr(train_loader, "dataset", None) or [])  # data.max_skips is a fraction of this
        opt_steps = math.ceil(steps_per_epoch / cfg.train.accum_steps)
        total = max(1, opt_steps * cfg.train.epochs)
        warm = int(round(cfg.train.warmup_epochs * opt_steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(total, warm, cfg.train.min_lr_ratio))
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        if cfg.train.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        self.model, self.optimizer, self.train_loader = self.accelerator.prepare(model, self.optimizer, train_loader)
        self.val_loader = self.accelerator.prepare(val_loader) if val_loader is not None else None
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.state = TrainerState()
        self.ckpt_dir = self.out_dir / "checkpoints"
        self._writer: Any = None

    # ------------------------------------------------------------------ persistence
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def _state_dir(self) -> Path:
        return self.ckpt_dir / "last" / "state"

    def save_state(self) -> None:
        """Everything needed for exact resume, into ``checkpoints/last/state`` (atomically swapped)."""
        self.accelerator.wait_for_everyone()
        target = self._state_dir()
        tmp = target.with_name("state.tmp")
        self.accelerator.save_state(str(tmp), safe_serialization=True)
        if self.is_main:
            write_json_atomic(tmp / STATE_FILE, self.state.__dict__)
            replace_dir(tmp, target)
        self.accelerator.wait_for_everyone()

    def load_state(self) -> None:
        target = self._state_dir()
        if not (target / STATE_FILE).is_file():
            raise VidrecError(
                f"--resume: no resumable state in {target}. Start without --resume, or point --out at the run to continue."
            )
        self.accelerator.load_state(str(target))
        data = json.loads((target / STATE_FILE).read_text())
        self.state = TrainerState(**data)
        log.info("resuming at epoch %d, step %d", self.state.epoch + 1, self.state.step_in_epoch)

    def _log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out_dir / "tb"))
        step = record.get("step", self.state.global_step)
        for k, v in record.items():
            if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                self._writer.add_scalar(k, v, step)

    # ------------------------------------------------------------------ loop
    def fit(self, *, resume: bool = False) -> FitResult:
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        set_seed(cfg.train.seed)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if resume:
            self.load_state()
        st = self.state
        stopped_early = False
        while st.epoch < cfg.train.epochs and not st.finished:
            self._train_epoch()
            metrics = self._validate()
            st.history.append(metrics)
            self._log({"type": "epoch", **metrics})
            improved = self._is_improvement(metrics)
            if improved:
                st.best, st.best_epoch, st.bad_epochs = metrics[cfg.train.monitor], st.epoch, 0
                if self.is_main:
                    save_checkpoint(self.ckpt_dir / "best", model=self.model, cfg=cfg, classes=self.classes, metrics=metrics)
            else:
                st.bad_epochs += 1
            st.epoch += 1
            st.step_in_epoch = 0
            if cfg.train.early_stop_patience and st.bad_epochs >= cfg.train.early_stop_patience:
                log.info("early stop: no improvement in %s for %d epochs", cfg.train.monitor, st.bad_epochs)
                stopped_early = True
                st.finished = True
            if self.is_main:
                save_checkpoint(self.ckpt_dir / "last", model=self.model, cfg=cfg, classes=self.classes, metrics=metrics)
            self.save_state()
        if self._writer is not None:
            self._writer.close()
        best = self.ckpt_dir / "best"
        best_metrics = json.loads((best / "metrics.json").read_text()) if (best / "metrics.json").is_file() else {}
        return FitResult(best, self.ckpt_dir / "last", best_metrics, st.history, st.train_seconds, st.substituted, stopped_early)

    def _is_improvement(self, metrics: dict[str, Any]) -> bool:
        key = self.cfg.train.monitor
        if key not in metrics or metrics[key] is None:
            return self.state.best is None
        if self.state.best is None:
            return True
        return metrics[key] > self.state.best if key == "val_top1" else metrics[key] < self.state.best

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
            total=n, initial=start, desc=f"epoch {st.epoch + 1}/{cfg.train.epochs}", disable=not (self.progress and self.is_main),
            unit="batch", dynamic_ncols=True, leave=False,
        )
        seen, correct, loss_sum, t0 = 0, 0, 0.0, time.perf_counter()
        stand_ins = 0  # clips of this epoch that came from a stand-in video (theirs failed to decode)
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
                    raise TrainingDiverged(f"the loss became {loss.item()} at epoch {st.epoch + 1}, step {i + 1}; {hint}")
                acc.backward(loss / accum)
            if sync:
                if cfg.train.grad_clip:
                    acc.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                st.global_step += 1
            b = batch["label"].shape[0]
            seen += b
            correct += int((logits.argmax(1) == batch["label"]).sum()) if logits is not None else 0
            loss_sum += float(loss.detach()) * b
            subs = int(batch["substituted"].sum()) if "substituted" in batch else 0
            st.substituted += subs
            stand_ins += subs
            self._check_stand_ins(stand_ins)
            st.step_in_epoch = i + 1
            elapsed = time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", clips_s=f"{seen / max(elapsed, 1e-9):.1f}")
            if (i + 1) % cfg.train.log_every == 0 or (i + 1) == n:
                self._log({
                    "type": "train", "epoch": st.epoch + 1, "step": st.global_step, "train_loss": loss_sum / seen,
                    "train_acc": correct / seen, "lr": self.scheduler.get_last_lr()[0], "clips_per_s": seen / max(elapsed, 1e-9),
                })
            if sync and cfg.train.checkpoint_every_steps and st.global_step % cfg.train.checkpoint_every_steps == 0 and (i + 1) < n:
                now = time.perf_counter()
                st.train_seconds += now - t_mark
                self.save_state()
                t_mark = time.perf_counter()
            if self.step_callback is not None:
                self.step_callback(st)
        bar.close()
        st.train_seconds += time.perf_counter() - t_mark
        self._epoch_train = {
            "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
            "train_clips_per_s": seen / max(time.perf_counter() - t0, 1e-9),
        }

    def _check_stand_ins(self, stand_ins: int) -> None:
        """Stop once more than ``data.max_skips`` of the training subset came from stand-in videos."""
        if not stand_ins or not self.train_size:
            return
        share = self.train_size / max(self.accelerator.num_processes, 1)  # this process's part of the subset
        if stand_ins > self.cfg.data.max_skips * share:
            raise VidrecError(
                f"{stand_ins} training clips this epoch came from stand-ins because their own videos failed to decode "
                f"(more than data.max_skips={self.cfg.data.max_skips:g} of {int(share)} clips); the warnings above name "
                "the files. Fix or remove them, or raise data.max_skips."
            )

    def _validate(self) -> dict[str, Any]:
        st = self.state
        metrics: dict[str, Any] = {"epoch": st.epoch + 1, "step": st.global_step, **getattr(self, "_epoch_train", {})}
        metrics["lr"] = self.scheduler.get_last_lr()[0]
        metrics["train_seconds"] = st.train_seconds
        if self.val_loader is None:
            return metrics
        metrics.update(self.task.validate(self.model, self.val_loader, accelerator=self.accelerator, progress=self.progress))
        if self.is_main:
            log.info(
                "epoch %d: train_loss %.4f train_acc %.3f | val_loss %.4f val_top1 %.3f val_top5 %.3f",
                st.epoch + 1, metrics.get("train_loss", float("nan")), metrics.get("train_acc", float("nan")),
                metrics.get("val_loss", float("nan")), metrics.get("val_top1", float("nan")), metrics.get("val_top5", float("nan")),
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
    for obj in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None),
                getattr(getattr(getattr(loader, "batch_sampler", None), "batch_sampler", None), "sampler", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
