"""Resumable training state without pickle: any ``state_dict()`` as JSON plus safetensors.

The optimiser, the learning-rate scheduler, the AMP gradient scaler and the RNG states are
nested dicts and lists of numbers, strings and tensors. :func:`save_state_dict` splits one into
its tensors (``NAME.safetensors``) and everything else (``NAME.json``, with
``{"__tensor__": key}`` where a tensor was); :func:`load_state_dict` puts it back together.
Tuples, dicts with non-string keys (an optimiser's parameter ids) and numpy arrays are tagged so
they come back as they were, which keeps resume bit-exact. Nothing here reads a pickle, so a run
directory received from someone else cannot run code on ``--resume``.

Any object with ``state_dict()`` / ``load_state_dict()`` works unchanged (a new scheduler or
optimiser needs no code here); a value of another type is refused when it is saved.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidrec.errors import CheckpointError
from vidrec.utils.io import write_text_atomic

_TAGS = ("__tensor__", "__tuple__", "__items__", "__ndarray__")


def _encode(obj: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = path or "root"
        while key in tensors:
            key += "+"
        t = obj.detach().cpu()
        # safetensors refuses views and shared storage: store a compact copy of those
        ptrs = {v.untyped_storage().data_ptr() for v in tensors.values() if v.numel()}
        if not t.is_contiguous() or (t.numel() and t.untyped_storage().data_ptr() in ptrs) or t.storage_offset():
            t = t.clone().contiguous()
        tensors[key] = t
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise CheckpointError(f"resumable state: {path} is a numpy object array; only numeric arrays can be stored")
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: _encode(v, tensors, f"{path}/{k}") for k, v in obj.items()}
        return {
            "__items__": [
                [_encode(k, tensors, f"{path}/key{i}"), _encode(v, tensors, f"{path}/{k}")]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    raise CheckpointError(
        f"resumable state: {path or 'the state'} is a {type(obj).__name__}; only tensors, numbers, strings, "
        "lists, tuples and dicts are stored (never pickled objects)"
    )


def _decode(obj: Any, tensors: dict[str, torch.Tensor], source: str) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors, source) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        key = obj["__tensor__"]
        if not isinstance(key, str) or key not in tensors:
            raise CheckpointError(f"{source}: refers to tensor {key!r}, which its .safetensors file does not hold")
        return tensors[key]
    if "__ndarray__" in obj:
        try:
            return np.asarray(obj["__ndarray__"], dtype=np.dtype(str(obj.get("dtype"))))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: a malformed array ({exc})") from None
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors, source) for v in _expect_list(obj["__tuple__"], source))
    if "__items__" in obj:
        items = _expect_list(obj["__items__"], source)
        if not all(isinstance(kv, list) and len(kv) == 2 for kv in items):
            raise CheckpointError(f"{source}: a malformed mapping")
        out = {}
        for k, v in items:
            k = _decode(k, tensors, source)
            if isinstance(k, (list, dict, torch.Tensor, np.ndarray)):
                raise CheckpointError(f"{source}: a mapping key of type {type(k).__name__}")
            out[k] = _decode(v, tensors, source)
        return out
    return {k: _decode(v, tensors, source) for k, v in obj.items()}


def _expect_list(v: Any, source: str) -> list[Any]:
    if not isinstance(v, list):
        raise CheckpointError(f"{source}: malformed (expected a list, got {type(v).__name__})")
    return v


def save_state_dict(directory: str | Path, name: str, state: Any) -> None:
    """Write ``state`` as ``directory/NAME.json`` (+ ``NAME.safetensors`` when it holds tensors)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors, "")
    if tensors:
        save_file(tensors, str(directory / f"{name}.safetensors"))
    write_text_atomic(directory / f"{name}.json", json.dumps({"tensors": bool(tensors), "state": tree}) + "\n")


def load_state_dict(directory: str | Path, name: str) -> Any:
    """Read what :func:`save_state_dict` wrote; any problem is a :class:`CheckpointError` naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    path = directory / f"{name}.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing, so this state cannot be resumed exactly")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from None
    if not isinstance(doc, dict) or "state" not in doc:
        raise CheckpointError(f"{path}: not a vidrec state file")
    tensors: dict[str, torch.Tensor] = {}
    if doc.get("tensors"):
        st = directory / f"{name}.safetensors"
        try:
            tensors = load_file(str(st), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{st}: unreadable ({exc})") from None
    return _decode(doc["state"], tensors, str(path))


# ------------------------------------------------------------------------------------------ RNG


def rng_state() -> dict[str, Any]:
    """This process's random states: Python, numpy, torch CPU and every CUDA device."""
    out: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    if torch.backends.mps.is_available():
        out["mps"] = torch.mps.get_rng_state()
    return out


def set_rng_state(state: dict[str, Any], *, source: str) -> None:
    """Restore what :func:`rng_state` captured (states of devices this machine lacks are ignored)."""
    try:
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            cuda = list(state["cuda"])[: torch.cuda.device_count()]
            for i, s in enumerate(cuda):
                torch.cuda.set_rng_state(s, i)
        if "mps" in state and torch.backends.mps.is_available():
            torch.mps.set_rng_state(state["mps"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{source}: not a valid set of random states ({type(exc).__name__}: {exc})") from None
