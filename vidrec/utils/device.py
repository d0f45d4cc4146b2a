"""Which torch device a verb runs on, the same rule everywhere (train, eval, predict, embed, search, serve).

``auto``: CUDA, else Apple's MPS, else the CPU. ``cuda`` is the current GPU, ``cuda:N`` the N-th
visible one; both are checked against the GPUs this process sees, ``mps`` against the machine.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from vidrec.errors import ConfigError, VidrecError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N (the N-th visible GPU) or mps."
_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _say(option: str, name: str) -> str:
    """``train.device=cuda:7`` for a config key, ``--device cuda:7`` for a flag."""
    return f"{option}={name}" if "." in option else f"{option} {name}"


def check_device_name(name: str, *, option: str = "--device") -> str:
    """The name, stripped and lower-cased, or a one-line error listing the accepted ones."""
    n = str(name).strip().lower()
    if not _NAME.match(n):
        raise ConfigError(f"{_say(option, str(name))}: unknown device; use {DEVICE_HELP}")
    return n


def resolve_device(name: str = "auto", *, option: str = "--device") -> torch.device:
    """The :class:`torch.device` for ``name`` (see the module doc); an absent GPU is a one-line error."""
    import torch

    n = check_device_name(name, option=option)
    if n == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if n == "cpu":
        return torch.device("cpu")
    if n == "mps":
        if not torch.backends.mps.is_available():
            raise VidrecError(
                f"{_say(option, n)} but MPS is not available on this machine; use {_say(option, 'auto')} or cpu"
            )
        return torch.device("mps")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise VidrecError(f"{_say(option, n)} but no CUDA GPU is visible; use {_say(option, 'auto')} or cpu")
    if ":" not in n:
        return torch.device("cuda", torch.cuda.current_device())
    index = int(n.split(":", 1)[1])
    if index >= count:
        raise VidrecError(
            f"{_say(option, n)} but only {count} CUDA GPU{'s are' if count > 1 else ' is'} visible "
            f"(cuda:0{f'..cuda:{count - 1}' if count > 1 else ''}); choose one of those or {_say(option, 'auto')}"
        )
    return torch.device("cuda", index)


def autocast(device: torch.device) -> AbstractContextManager[Any]:
    """Inference autocast: bf16 (fp16 where bf16 is missing) on CUDA; nothing elsewhere."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return torch.autocast("cpu", enabled=False)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` says), recorded beside every
    measured number: the same job runs up to 2× faster or slower from one machine to the next."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"
