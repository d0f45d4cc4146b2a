"""Export a checkpoint to ONNX (``vidrec export --format onnx``) and check it against PyTorch.

::

    best/ ─▶ load_checkpoint ─▶ torch.onnx.export (dynamo, batch size dynamic) ─▶ model.onnx
                                      │ metadata: classes, input spec, resolved config, opset
                                      └▶ onnxruntime at batch 1 and 3 vs PyTorch: max |Δlogit|

The file describes itself as a checkpoint directory does: ``vidrec predict --checkpoint model.onnx``
(:mod:`vidrec.engine.onnx_backend`) needs nothing else. Models with side inputs (the multi-stream
model) take more than the video and are refused; a model the exporter cannot trace is refused in
one line naming the model and the exporter's reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from vidrec.engine.onnx_backend import OnnxModel, require_onnx
from vidrec.errors import VidrecError

log = logging.getLogger(__name__)

FORMATS = ("onnx",)
DEFAULT_OPSET = 18  # torch 2.14's dynamo exporter writes opset 18 natively (others are converted)
META_FORMAT = "1"  # version of the vidrec.* metadata layout
CHECK_BATCHES = (1, 3)  # the export is traced at batch 2; these check that the batch size is really dynamic


class ExportError(VidrecError):
    """The checkpoint cannot be exported (side inputs, an operation the exporter cannot trace)."""


@dataclass
class ExportResult:
    path: Path
    model: str
    opset: int
    input_shape: tuple[str | int, ...]  # ("batch", C, T, H, W)
    max_abs_diff: float | None  # max |Δlogit| of onnxruntime vs PyTorch on random clips; None when not checked
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "model": self.model,
            "opset": self.opset,
            "input_shape": list(self.input_shape),
            "max_abs_diff": self.max_abs_diff,
            "seconds": round(self.seconds, 2),
        }


def _reason(exc: BaseException) -> str:
    """The exporter's reason in one line (its messages run to pages)."""
    lines = [
        ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith(("Traceback", "File "))
    ]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
) -> ExportResult:
    """Write ``checkpoint``'s model as an ONNX file ``out`` (video ``(batch, C, T, H, W)`` → logits
    ``(batch, K)``, batch size dynamic) with the class names, input spec and config in its metadata;
    with ``check``, run it with onnxruntime and report the largest logit difference to PyTorch."""
    from vidrec.data.build import resolved_clip
    from vidrec.engine.checkpoint import read_checkpoint_meta
    from vidrec.models.registry import get_model_entry
    from vidrec.utils.io import atomic_path, check_writable

    onnx, _ = require_onnx()
    t0 = time.perf_counter()
    checkpoint, out = Path(checkpoint), Path(out)
    cfg, classes, _ = read_checkpoint_meta(checkpoint)
    name = cfg.model.name
    side = tuple(get_model_entry(name).input.side_inputs)
    if side:  # known from the registry: refused before the model is built
        raise ExportError(
            f"{checkpoint}: model {name!r} also takes {', '.join(side)} besides the video; "
            "ONNX export covers models whose only input is the video (use the PyTorch checkpoint)"
        )
    check_writable(out, what="--out", folder=False)
    from vidrec.engine.checkpoint import load_checkpoint
    from vidrec.models.base import input_spec_of

    ck = load_checkpoint(checkpoint, map_location="cpu")
    model = ck.model.eval()
    spec = input_spec_of(model)
    num_frames, image_size = resolved_clip(cfg, spec)
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(2, 3, num_frames, image_size, image_size, generator=gen)  # (B, C, T, H, W), normalised
    batch = torch.export.Dim("batch", min=1, max=1024)
    log.info(
        "exporting %s (%d frames at %d×%d) to ONNX opset %d: the exporter traces the model, which takes a while",
        name,
        num_frames,
        image_size,
        image_size,
        opset,
    )
    with atomic_path(out) as tmp:
        try:
            notes = io.StringIO()  # the exporter prints its steps; they go to the debug log, not into --json output
            with warnings.catch_warnings(), contextlib.redirect_stdout(notes):  # nor its notes about torch internals
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (example,),
                    str(tmp),
                    input_names=["video"],
                    output_names=["logits"],
                    dynamic_shapes={"video": {0: batch}},
                    opset_version=opset,
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
        except Exception as exc:  # the exporter raises many types; the reason is reported in one line
            log.debug("exporter output:\n%s", notes.getvalue())
            raise ExportError(
                f"{checkpoint}: model {name!r} cannot be exported to ONNX ({_reason(exc)}); use the PyTorch checkpoint"
            ) from exc
        log.debug("exporter output:\n%s", notes.getvalue())
        proto = onnx.load(str(tmp))
        input_spec = {
            "name": "video",
            "shape": ["batch", 3, num_frames, image_size, image_size],
            "layout": "BCTHW",
            "dtype": "float32",
            "num_frames": num_frames,
            "image_size": image_size,
            "mean": list(spec.mean),
            "std": list(spec.std),
            "values": "RGB in [0, 1], then (x - mean) / std",
            "output": "logits (batch, classes)",
        }
        meta = {
            "vidrec.format": META_FORMAT,
            "vidrec.model": name,
            "vidrec.classes": json.dumps(list(classes)),
            "vidrec.input": json.dumps(input_spec),
            "vidrec.config": yaml.safe_dump(cfg.to_dict(), sort_keys=False),
            "vidrec.opset": str(opset),
            "vidrec.source": str(checkpoint.resolve()),
            "vidrec.version": __import__("vidrec").__version__,
            "vidrec.torch": torch.__version__,
        }
        del proto.metadata_props[:]
        for key, value in meta.items():
            proto.metadata_props.add(key=key, value=value)
        shape = f"(batch, 3, {num_frames}, {image_size}, {image_size})"
        proto.doc_string = f"vidrec {name}: video {shape} -> logits (batch, {len(classes)})"
        onnx.save(proto, str(tmp))
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    diff = check_parity(out, model, num_frames, image_size) if check else None
    res = ExportResult(
        out,
        name,
        int(opsets.get("ai.onnx", opset)),
        ("batch", 3, num_frames, image_size, image_size),
        diff,
        time.perf_counter() - t0,
    )
    log.debug("exported %s to %s (opset %d, max |Δlogit| %s) in %.1f s", name, out, res.opset, diff, res.seconds)
    return res


@torch.no_grad()
def check_parity(path: str | Path, model: torch.nn.Module, num_frames: int, image_size: int, *, seed: int = 1) -> float:
    """Largest |Δlogit| between the ONNX file (onnxruntime, CPU) and ``model`` (PyTorch) on random clips
    of each batch size in :data:`CHECK_BATCHES`."""

    runner = OnnxModel(path)
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for b in CHECK_BATCHES:
        video = torch.randn(b, 3, num_frames, image_size, image_size, generator=gen)
        worst = max(worst, float((runner(video) - model(video).float()).abs().max()))
    return worst
