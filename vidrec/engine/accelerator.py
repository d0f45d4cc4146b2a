"""The accelerator of a training run (🤗 accelerate): device, mixed precision and, under ``accelerate launch`` /
``torchrun``, DDP. The trainer builds one per run with :func:`make_accelerator`; :func:`resolve_precision` is the
rule for ``train.precision=auto``."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch import nn

from vidrec.config import Config
from vidrec.engine.distributed import check_launch
from vidrec.errors import VidrecError
from vidrec.utils.device import resolve_device


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
