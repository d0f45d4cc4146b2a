"""Weights from disk or from a hub, loaded through one path with one readable report.

Local files (what ``model.weights: PATH`` reads):

- ``*.safetensors`` (a vidrec checkpoint's ``model.safetensors``, a timm / HF export);
- ``*.pth`` / ``*.pt`` / ``*.bin`` read with ``torch.load(weights_only=True)`` (never unpickled
  blindly); common wrappers are unwrapped: ``{"state_dict": ...}``, ``{"model": ...}``,
  ``{"model_state_dict": ...}``, ``{"model_state": ...}`` (PySlowFast / PyTorchVideo), ``{"module": ...}``
  and ``module.`` / ``_orig_mod.`` prefixes;
- a directory: a vidrec checkpoint dir or a ``from_pretrained`` dir (``model.safetensors``,
  sharded ``*.safetensors`` with an index, or ``pytorch_model.bin``). A model with a
  ``read_pretrained_dir(path)`` method (the Hugging Face wrapper) reads ``from_pretrained`` dirs
  (those with ``config.json``) through its own library, which renames legacy keys.

A model may define ``remap_state_dict(sd) -> sd`` to translate upstream key names (timm ViT →
LS-ViT, torchvision ``fc`` → ``head``, bare timm ResNet → CNN-RNN encoder). Tensors whose shapes
do not fit are refused with the first mismatched name, except a classifier of another label set
(ImageNet's 1000, Kinetics' 400), which is skipped and reported: fine-tuning replaces it anyway.

Hub weights (``model.pretrained: true``) are described as data in the registry
(:class:`~vidrec.models.registry.PretrainedCfg`: ``timm:<name>``, ``torchvision:<Enum>.<member>``, ``hf:<id>``,
``url:<https address of a checkpoint file>``);
:func:`~vidrec.models.registry.create_model` applies both. Offline, they fail at once with
:class:`~vidrec.errors.WeightsError` telling how to pass a local file; a reachability check with
a short timeout runs first, so nothing waits for a network that is not there.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from vidrec.errors import UnsafeFileError, WeightsError

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "module", "net", "weights")
_STRIP_PREFIXES = ("module.", "_orig_mod.")
_DIR_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth", "model.pt")
_OFFLINE_ENV = ("VIDREC_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
NETWORK_TIMEOUT_S = 2.0  # reachability check before any download


@dataclass
class LoadReport:
    """What a load did: tensors loaded, missing from the file, unexpected in it, skipped."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    skipped: list[str] = field(default_factory=list)  # classifier of another label set

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected

    def summary(self, max_names: int = 8) -> str:
        def names(keys: list[str]) -> str:
            shown = ", ".join(keys[:max_names])
            return shown + (f", ... (+{len(keys) - max_names} more)" if len(keys) > max_names else "")

        lines = [f"weights {self.source}: loaded {len(self.loaded)} tensors"]
        if self.missing:
            lines.append(f"  missing ({len(self.missing)}, kept at their initial values): {names(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected ({len(self.unexpected)}, ignored): {names(self.unexpected)}")
        if self.skipped:
            lines.append(f"  skipped ({len(self.skipped)}, classifier for another label set): {names(self.skipped)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------------------------
# reading state dicts


def unwrap_state_dict(obj: Any, *, source: str = "checkpoint") -> StateDict:
    """Find the tensor dict inside common checkpoint wrappers and strip DDP / compile prefixes."""
    for _ in range(4):  # nested wrappers, e.g. {"model": {"state_dict": ...}}
        if not isinstance(obj, Mapping):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{source}: holds a {type(obj).__name__}, not a state dict of tensors")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise WeightsError(f"{source}: no tensors found (keys: {', '.join(list(map(str, obj))[:8])})")
    for prefix in _STRIP_PREFIXES:
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def _read_file(path: Path) -> StateDict:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    if suffix in (".pth", ".pt", ".bin", ".ckpt", ".pyth"):  # .pyth: PyTorchVideo / PySlowFast
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:  # a pickle of more than tensors: refused, never run
            from vidrec.utils.io import unpickle_refusal

            raise UnsafeFileError(
                f"{unpickle_refusal(path, exc)} torch.load(weights_only=True) reads plain state dicts; "
                "re-save it as one or as .safetensors"
            ) from None
        except Exception as exc:  # torch raises many types for a bad pickle
            raise WeightsError(
                f"{path}: cannot be read with torch.load(weights_only=True) ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]}); re-save it as a plain state dict or as .safetensors"
            ) from exc
        return unwrap_state_dict(obj, source=str(path))
    raise WeightsError(
        f"{path}: unknown weights format {suffix!r}; use .safetensors, .pth/.pt, or a from_pretrained directory"
    )


def read_state_dict(path_or_dir: str | os.PathLike[str]) -> StateDict:
    """Read tensors from a file or a checkpoint / ``from_pretrained`` directory (CPU)."""
    path = Path(path_or_dir).expanduser()
    if not path.exists():
        raise WeightsError(f"model.weights: {path} does not exist")
    if path.is_file():
        return _read_file(path)
    for name in _DIR_FILES:
        if (path / name).is_file():
            return _read_file(path / name)
    shards = sorted(path.glob("*.safetensors")) or sorted(path.glob("pytorch_model-*.bin"))
    if shards:
        sd: StateDict = {}
        for shard in shards:
            sd.update(_read_file(shard))
        return sd
    raise WeightsError(
        f"model.weights: {path} is a directory without weights (looked for {', '.join(_DIR_FILES)} or *.safetensors)"
    )


# --------------------------------------------------------------------------------------------
# loading into a model


def _head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the model's classifier (mismatches there are skipped, not refused)."""
    get = getattr(model, "get_classifier", None)
    if get is None:
        return ()
    try:
        head = get()
    except (AttributeError, NotImplementedError):
        return ()
    return tuple(f"{n}." for n, m in model.named_modules() if m is head and n)


def load_state_dict_into(
    model: nn.Module, sd: Mapping[str, torch.Tensor], *, source: str, strict: bool = False, remap: bool = True
) -> LoadReport:
    """Load ``sd`` into ``model`` (after the model's ``remap_state_dict`` hook); return the report."""
    hook: Callable[[StateDict], StateDict] | None = getattr(model, "remap_state_dict", None)
    sd = dict(sd)
    if remap and hook is not None:
        sd = hook(sd)
    own = model.state_dict()
    heads = _head_prefixes(model)
    report = LoadReport(source=source)
    to_load: StateDict = {}
    for key, tensor in sd.items():
        if key not in own:
            report.unexpected.append(key)
            continue
        if tuple(tensor.shape) != tuple(own[key].shape):
            if not strict and key.startswith(heads):
                report.skipped.append(key)
                continue
            raise WeightsError(
                f"{source}: tensor {key!r} has shape {tuple(tensor.shape)} in the file but "
                f"{tuple(own[key].shape)} in the model; these weights belong to another architecture or size"
            )
        to_load[key] = tensor
    report.loaded = sorted(to_load)
    report.missing = sorted(k for k in own if k not in to_load and k not in report.skipped)
    report.skipped.sort()
    report.unexpected.sort()
    if strict and not report.ok:
        raise WeightsError(report.summary() + "\n(strict loading: every tensor must match)")
    if not to_load:
        raise WeightsError(
            f"{source}: none of its {len(sd)} tensors match the model (e.g. {next(iter(sd), '?')!r} vs "
            f"{next(iter(own), '?')!r}); these weights belong to another model"
        )
    model.load_state_dict(to_load, strict=False)
    return report


def load_weights(model: nn.Module, path_or_dir: str | os.PathLike[str], *, strict: bool = False) -> LoadReport:
    """Load local weights into ``model``; log and return a :class:`LoadReport`.

    Raises :class:`WeightsError` for a missing/unreadable file, a tensor whose shape does not fit
    (naming it), or, with ``strict``, any missing or unexpected tensor.
    """
    path = Path(path_or_dir).expanduser()
    reader: Callable[[Path], StateDict] | None = getattr(model, "read_pretrained_dir", None)
    if reader is not None and path.is_dir() and (path / "config.json").is_file():
        sd = reader(path)  # a from_pretrained dir, read by its library (which renames legacy keys)
    else:
        sd = read_state_dict(path)
    report = load_state_dict_into(model, sd, source=str(path_or_dir), strict=strict)
    log.info("%s", report.summary())
    return report


# --------------------------------------------------------------------------------------------
# hubs


def _env_offline() -> str | None:
    for name in _OFFLINE_ENV:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


_REACHABLE: dict[str, bool] = {}


def host_reachable(host: str, *, port: int = 443, timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """True when a TCP connection to ``host`` opens within ``timeout`` (DNS included; cached)."""
    if host in _REACHABLE:
        return _REACHABLE[host]
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)  # DNS lookups ignore socket timeouts
    t.start()
    t.join(timeout + 0.5)
    _REACHABLE[host] = bool(result and result[0])
    return _REACHABLE[host]


_HUB_HOSTS = {"timm": "huggingface.co", "hf": "huggingface.co", "torchvision": "download.pytorch.org"}


def require_online(source: str, *, what: str = "model.pretrained", hint: str | None = None) -> None:
    """Raise :class:`WeightsError` at once when ``source``'s hub cannot be reached."""
    scheme, _, rest = source.partition(":")
    host = urllib.parse.urlsplit(rest).hostname or "" if scheme == "url" else _HUB_HOSTS.get(scheme, "huggingface.co")
    env = _env_offline()
    reason = f"{env} is set" if env else (None if host_reachable(host) else f"{host} cannot be reached")
    if reason:
        hint = hint or (
            "pass the file: model.weights=PATH (a .safetensors/.pth file or a from_pretrained directory), "
            "with model.pretrained=false"
        )
        raise WeightsError(
            f"{what}: cannot fetch {source} ({reason}). Download the weights on a machine that is online and {hint}"
        )


def _cached_torchvision_file(url: str) -> Path | None:
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    return path if path.is_file() else None


def fetch_state_dict(source: str) -> StateDict:
    """Download (or read from the local hub cache) the state dict named by ``source``.

    ``timm:<model name>``: the timm model's own weights (its classifier included);
    ``torchvision:<WeightsEnum>.<member>``, e.g. ``torchvision:R3D_18_Weights.KINETICS400_V1``;
    ``url:<https address>``: a checkpoint file (PyTorchVideo's model zoo), kept in torch's hub cache.
    """
    scheme, _, name = source.partition(":")
    if scheme == "url":
        cached = _cached_torchvision_file(name)
        if cached is None:
            require_online(source)
            cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urllib.parse.urlsplit(name).path)
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(name, str(cached), progress=False)
        return read_state_dict(cached)
    if scheme == "torchvision":
        import torchvision.models as tvm

        enum_name, _, member = name.partition(".")
        weights = tvm.get_weight(f"{enum_name}.{member}")
        cached = _cached_torchvision_file(weights.url)
        if cached is not None:
            return read_state_dict(cached)
        require_online(source)
        return dict(weights.get_state_dict(progress=False))
    if scheme == "timm":
        import timm

        cached_file = _cached_timm_file(name)
        if cached_file is None:
            require_online(source)
        overlay = {"file": str(cached_file)} if cached_file else None
        try:
            net = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
        except (OSError, RuntimeError) as exc:
            raise WeightsError(
                f"model.pretrained: fetching {source} failed ({exc}); pass model.weights=PATH instead"
            ) from exc
        return dict(net.state_dict())
    raise WeightsError(
        f"model.pretrained: unknown weights source {source!r} (expected timm:, torchvision:, url: or hf:)"
    )


def _cached_timm_file(name: str) -> Path | None:
    """The hub cache's copy of a timm model's weights, when one was downloaded before."""
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(name)
        repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        if not repo:
            return None
        for fname in ("model.safetensors", "pytorch_model.bin"):
            hit = try_to_load_from_cache(repo, fname)
            if isinstance(hit, str):
                return Path(hit)
    except Exception:  # noqa: BLE001 - the cache is only a shortcut; fall back to the hub
        return None
    return None


def load_pretrained(model: nn.Module, source: str, *, strict: bool = False) -> LoadReport:
    """Fetch ``source`` (see :func:`fetch_state_dict`) and load it through the model's remap hook."""
    report = load_state_dict_into(model, fetch_state_dict(source), source=source, strict=strict)
    log.info("%s", report.summary())
    return report
