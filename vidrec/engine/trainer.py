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
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vidrec.config import Config
from vidrec.engine.checkpoint import WEIGHTS, load_state_into, save_checkpoint, unwrap
from vidrec.engine.distributed import check_launch
from vidrec.engine.optim import LRSchedule, build_optimizer, group_lrs
from vidrec.engine.state import load_state_dict, rng_state, save_state_dict, set_rng_state
from vidrec.engine.tasks import Task, make_task
from vidrec.errors import CheckpointError, VidrecError
from vidrec.models.base import to_channels_last
from vidrec.utils.device import resolve_device
from vidrec.utils.io import head_lines, link_tree, recover_dir, torch_load_safely, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

STATE_DIR = "state"
STATE_FILE = "trainer_state.json"
STATE_FORMAT = 2  # 1 (no "format" key): accelerate's save_state files, read with weights_only=True
METRICS_LOG = "metrics.jsonl"


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
    if (cfg.train.device == "auto" or cfg.train.device.startswith("cuda")) and torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    if cfg.train.device == "mps" or (cfg.train.device == "auto" and torch.backends.mps.is_available()):
        return "no"
    if has_conv3d(model):
        return "no"
    return "bf16" if cpu_has_native_bf16() else "no"


def select_cuda_device(device: str) -> None:
    """Check ``cuda`` / ``cuda:N`` against the visible GPUs (:func:`vidrec.utils.device.resolve_device`,
    the rule every verb uses) and make ``cuda:N`` the current device."""
    import os

    dev = resolve_device(device, option="train.device")
    if ":" in device:
        if int(os.environ.get("LOCAL_RANK", "-1")) != -1:
            raise VidrecError(
                f"train.device={device}: under accelerate launch / torchrun every process takes its own GPU; "
                "use train.device=auto (and CUDA_VISIBLE_DEVICES to choose GPUs)"
            )
        torch.cuda.set_device(dev)  # accelerate's single-process device is "cuda", i.e. the current one


def make_accelerator(cfg: Config, model: nn.Module | None = None) -> Accelerator:
    """The accelerator of a run: device, precision and, under ``accelerate launch`` / ``torchrun``, DDP."""
    check_launch()
    cpu = cfg.train.device == "cpu"
    if cfg.train.device.startswith("cuda"):
        select_cuda_device(cfg.train.device)
    if cfg.train.device == "mps":
        resolve_device("mps", option="train.device")  # a one-line error where MPS is missing
    # accelerate keeps its state in a process-wide singleton; a second run in the same process (the
    # demo trains two models, the Python API may train many) may ask for another precision.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=resolve_precision(cfg, model), cpu=cpu, step_scheduler_with_optimizer=False)


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


@dataclass
class FitResult:
    best_checkpoint: Path
    last_checkpoint: Path
    best_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    train_seconds: float
    substituted: int
    stopped_early: bool


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
        self._writer: Any = None
        self._purge_step: int | None = None  # TensorBoard: on resume, hide what was logged after the saved step
        self._replay: list[dict[str, Any]] = []  # records at the saved step, logged again after the purge
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
                _restore(obj, load_state_dict(d, name), d / f"{name}.json", name)
            rng = f"rng_{self.accelerator.process_index}"
            rng = rng if (d / f"{rng}.json").is_file() else "rng_0"
            set_rng_state(load_state_dict(d, rng), source=str(d / f"{rng}.json"))
        elif fmt is None:
            self._load_accelerate_state(d)
        else:
            raise CheckpointError(f"{path}: state format {fmt!r}; this vidrec reads format {STATE_FORMAT}")
        self.state = TrainerState.from_json(data, source=str(path))
        self._legacy_log = "log_lines" not in data
        log.info("resuming from %s at epoch %d, step %d", checkpoint, self.state.epoch + 1, self.state.step_in_epoch)

    def _load_accelerate_state(self, d: Path) -> None:
        """A state written before format 2, by accelerate's ``save_state``: read with ``weights_only=True``.

        Its pickles (optimizer.bin, custom_checkpoint_0.pkl, random_states_N.pkl) are loaded only when
        they hold nothing but tensors and numbers; anything else is refused, naming the file.
        """
        load_state_into(self.model, d / WEIGHTS, source=str(d))
        files = {
            "optimizer": d / "optimizer.bin",
            "scheduler": d / "custom_checkpoint_0.pkl",
            "scaler": d / "scaler.pt",
        }
        for name, obj in self.stateful().items():
            _restore(obj, torch_load_safely(files[name], error=CheckpointError), files[name], name)
        rng_file = d / f"random_states_{self.accelerator.process_index}.pkl"
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

    def rewind_log(self, source: Path | None = None) -> None:
        """Cut ``metrics.jsonl`` back to what was logged when the state was saved (the rest is logged again).

        ``source``: the log to take the lines from when the run continues in another directory.
        TensorBoard hides events from the saved step on (``purge_step``); the kept records of that
        step are written to it again.
        """
        if not self.is_main:
            return
        path = self.out_dir / METRICS_LOG
        src = source or path
        st = self.state
        if self._legacy_log:  # a format-1 state: no line count, keep records up to its step
            lines = src.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True) if src.is_file() else []
            kept = "".join(ln for ln in lines if (s := _record_step(ln)) is not None and s <= st.global_step)
        else:
            kept = head_lines(src, st.log_lines)
        if path.is_file() or kept:
            write_text_atomic(path, kept)
        st.log_lines = kept.count("\n")
        self._purge_step = st.global_step
        records = [r for r in map(_parse_record, kept.splitlines()) if r is not None]
        self._replay = [r for r in records if r.get("step") == st.global_step]

    def _log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(self.out_dir / METRICS_LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.state.log_lines += 1
        self._scalars(record)

    def _scalars(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            tb = self.out_dir / "tb"
            _wait_past_event_files(tb)
            self._writer = SummaryWriter(str(tb), purge_step=self._purge_step)
            replay, self._replay = self._replay, []
            for r in replay:
                self._scalars(r)
        step = record.get("step", self.state.global_step)
        for k, v in record.items():
            if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                self._writer.add_scalar(k, v, step)

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
        if self._writer is not None:
            self._writer.close()
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


def _restore(obj: Any, state: Any, source: Path, name: str) -> None:
    try:
        obj.load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        why = (str(exc).splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"{source}: does not fit this run's {name} ({type(exc).__name__}: {why}); "
            "resume with the configuration the run was started with"
        ) from None


def _parse_record(line: str) -> dict[str, Any] | None:
    try:
        r = json.loads(line)
    except json.JSONDecodeError:
        return None
    return r if isinstance(r, dict) else None


def _record_step(line: str) -> int | None:
    r = _parse_record(line)
    return r.get("step") if r is not None and isinstance(r.get("step"), int) else None


def _wait_past_event_files(tb: Path) -> None:
    """Make the next event file sort after every existing one.

    TensorBoard reads a run's event files in name order, and applies a resume's ``purge_step`` only
    to the events read before it. The names are ``events.out.tfevents.<second>.<host>.<pid>.<n>``:
    two writers opened within one second sort by pid and counter as text, so a resumed run's file can
    sort before the killed run's one and its purge is lost. Waiting for the clock to pass the newest
    file's second (at most one second, and only when a run resumes that fast) keeps the order.
    """
    newest = -1
    for f in tb.glob("events.out.tfevents.*"):
        parts = f.name.split(".")
        if len(parts) > 3 and parts[3].isdigit():
            newest = max(newest, int(parts[3]))
    while int(time.time()) <= newest:
        time.sleep(0.05)
