"""Run an exported ONNX file (``vidrec export --format onnx``) with onnxruntime on the CPU.

:func:`load_onnx` turns the file into a :class:`~vidrec.engine.checkpoint.LoadedCheckpoint` whose
``model`` is an :class:`OnnxModel`, called like the PyTorch model (``(B, C, T, H, W)`` → logits), so
:class:`~vidrec.engine.predict.Predictor` reads, samples and transforms clips exactly as it does
for a checkpoint directory: ``vidrec predict --checkpoint model.onnx --backend onnx clip.mp4``.
The class names, input spec and config come from the file's metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from vidrec.errors import CheckpointError, ConfigError, VidrecError

REQUIRED_META = ("vidrec.classes", "vidrec.input", "vidrec.config")
INSTALL_HINT = "pip install 'vidrec[onnx]'"


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or a one-line error saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise VidrecError(
            f"ONNX export and the onnx backend need onnx and onnxruntime ({exc}): {INSTALL_HINT}"
        ) from exc
    return onnx, onnxruntime


def _is_onnx(path: Path) -> bool:
    return path.suffix.lower() == ".onnx"


def resolve_backend(checkpoint: str | Path, backend: str) -> str:
    """``torch`` or ``onnx`` for ``--backend auto|torch|onnx`` (auto: a ``.onnx`` file runs on onnxruntime)."""
    path = Path(checkpoint)
    if backend not in ("auto", "torch", "onnx"):
        raise ConfigError(f"--backend {backend}: unknown; use auto, torch or onnx")
    if backend == "auto":
        return "onnx" if _is_onnx(path) and path.is_file() else "torch"
    if backend == "onnx" and path.is_dir():
        raise CheckpointError(
            f"--backend onnx runs an exported .onnx file and {path} is a checkpoint directory; "
            f"export it first: vidrec export --checkpoint {path} --format onnx --out model.onnx"
        )
    if backend == "torch" and _is_onnx(path):
        raise CheckpointError(f"{path} is an ONNX file: run it with --backend onnx (or auto)")
    return backend


class OnnxModel:
    """An exported model run by onnxruntime on the CPU, called like the PyTorch model."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        _, ort = require_onnx()
        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()  # as many as PyTorch uses, for a fair comparison
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for unreadable files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{self.path}: not a readable ONNX model ({first[:200]})") from exc
        self.meta: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        missing = [k for k in REQUIRED_META if k not in self.meta]
        if missing:
            raise CheckpointError(
                f"{self.path}: an ONNX model without vidrec's metadata ({', '.join(missing)}); "
                "export it with vidrec export --checkpoint DIR --format onnx --out FILE"
            )
        spec = json.loads(self.meta["vidrec.input"])
        from vidrec.models.base import InputSpec

        self.input_spec = InputSpec(
            int(spec["num_frames"]), int(spec["image_size"]), tuple(spec["mean"]), tuple(spec["std"])
        )
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        if side:
            raise ConfigError(f"{self.path}: the ONNX model takes only the video, not {', '.join(side)}")
        x = np.ascontiguousarray(video.detach().to("cpu", torch.float32).numpy())  # (B, C, T, H, W)
        (logits,) = self.session.run(None, {self.input_name: x})
        return torch.from_numpy(logits)

    def eval(self) -> OnnxModel:
        return self

    def to(self, *args: Any, **kwargs: Any) -> OnnxModel:
        return self


def load_onnx(path: str | Path) -> Any:
    """The exported file as a ``LoadedCheckpoint`` (model: :class:`OnnxModel`; config and classes from its metadata)."""
    from vidrec.config import config_from_dict
    from vidrec.engine.checkpoint import LoadedCheckpoint

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such ONNX file")
    model = OnnxModel(path)
    try:
        tree = yaml.safe_load(model.meta["vidrec.config"])
        classes = json.loads(model.meta["vidrec.classes"])
        cfg = config_from_dict(tree)
    except (yaml.YAMLError, json.JSONDecodeError, ConfigError, AttributeError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable vidrec metadata in the ONNX model ({exc})") from exc
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise CheckpointError(f"{path}: vidrec.classes in the ONNX metadata is not a list of class names")
    return LoadedCheckpoint(model=model, cfg=cfg, classes=classes, metrics={}, path=path)  # type: ignore[arg-type]
