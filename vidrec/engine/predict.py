"""Predict classes for video files with a checkpoint directory (nothing else needed)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from vidrec.data.build import build_normalizer, build_reader, resolved_clip
from vidrec.engine.checkpoint import LoadedCheckpoint, load_checkpoint
from vidrec.errors import VidrecError, VideoError
from vidrec.video.reader import Clip

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    path: Path
    topk: list[tuple[str, float]]  # (class, probability), best first
    error: str | None = None
    frame_indices: list[int] | None = None

    @property
    def label(self) -> str | None:
        return self.topk[0][0] if self.topk else None


def _load(checkpoint: str | Path, device: str, backend: str) -> LoadedCheckpoint:
    """A checkpoint directory (PyTorch), or an exported .onnx file run by onnxruntime (``backend``: auto, torch, onnx)."""
    from vidrec.engine.onnx_backend import load_onnx, resolve_backend

    if resolve_backend(checkpoint, backend) == "onnx":
        if str(device) != "cpu":
            raise VidrecError(f"--device {device}: the onnx backend runs on the CPU; use --device cpu or the PyTorch checkpoint")
        return load_onnx(checkpoint)  # type: ignore[no-any-return]
    return load_checkpoint(checkpoint, map_location=device)


class Predictor:
    """Load once, predict many. ``views`` clips per video are averaged (softmax).

    Clips come from the same :class:`~vidrec.video.reader.ClipReader` as training's evaluation
    view (the checkpoint's sampler, ``data.decode_size`` and eval crop), as uint8, normalised on
    the device. :meth:`load` (decoding, no model) and :meth:`forward` (model, no decoding) are
    separate so that a caller can decode in workers and batch several videos.
    """

    def __init__(
        self, checkpoint: str | Path | LoadedCheckpoint, *, device: str = "cpu", views: int | None = None, backend: str = "auto"
    ) -> None:
        self.ck = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else _load(checkpoint, device, backend)
        self.device = torch.device(device)
        cfg = self.ck.cfg
        self.spec = self.ck.model.input_spec  # type: ignore[attr-defined]
        self.num_frames, self.image_size = resolved_clip(cfg, self.spec)
        self.reader = build_reader(cfg, self.spec, self.ck.classes, train=False)
        self.normalize = build_normalizer(cfg, self.spec)
        self.views = views or cfg.data.test_views
        self.side_keys = tuple(getattr(self.spec, "side_inputs", ()) or ())
        self._side: tuple[list, dict] | None = None  # (side-input callables, video id / path → record)

    def _side_inputs(self, path: Path, indices: list[int], info: Any) -> dict[str, torch.Tensor]:
        """Side inputs (boxes, joints, crops) of a dataset video: they come from its annotations, not the file."""
        if not self.side_keys:
            return {}
        if self._side is None:
            from vidrec.data.build import load_dataset, side_inputs_for

            rs = load_dataset(self.ck.cfg)
            lookup: dict[str, Any] = {}
            for recs in rs.subsets.values():
                for r in recs:
                    lookup.setdefault(r.video_id, r)
                    lookup.setdefault(str(Path(r.path).resolve()), r)
            self._side = (side_inputs_for(self.ck.cfg, self.spec, rs), lookup)
        fns, lookup = self._side
        record = lookup.get(str(path.resolve())) or lookup.get(path.stem)
        if record is None:
            raise VidrecError(
                f"{path}: model {self.ck.cfg.model.name!r} also needs {', '.join(self.side_keys)}, which come from the "
                f"annotations of its dataset ({self.ck.cfg.data.dataset} at {self.ck.cfg.data.root}); this video is not in it"
            )
        out: dict[str, torch.Tensor] = {}
        for fn in fns:
            out.update(fn(record, list(indices), info))
        return out

    def clips(self, path: str | Path) -> list[Clip]:
        """The ``views`` evaluation clips of one video (uint8, cropped), decoded in one pass."""
        return self.reader.read_views(Path(path), self.views)

    def load(self, path: str | Path) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[Clip]]:
        """Decode one video: uint8 ``(V, C, T, S, S)``, its side inputs, and the clips."""
        path = Path(path)
        clips = self.clips(path)
        video = torch.stack([c.video for c in clips])  # (V, C, T, S, S) uint8
        side: dict[str, torch.Tensor] = {}
        if self.side_keys:
            per_view = [self._side_inputs(path, c.indices, c.info) for c in clips]
            side = {k: torch.stack([v[k] for v in per_view]) for k in self.side_keys if k in per_view[0]}
        return video, side, clips

    @torch.no_grad()
    def forward(self, video: torch.Tensor, side: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Class probabilities ``(N, K)`` of uint8 clips ``(N, C, T, S, S)`` (normalised here, on the device)."""
        x = self.normalize(video.to(self.device, non_blocking=True))
        side = {k: v.to(self.device) for k, v in (side or {}).items()}
        return self.ck.model(x, **side).float().softmax(1)

    def predict_one(self, path: str | Path, *, topk: int = 5) -> Prediction:
        path = Path(path)
        video, side, clips = self.load(path)
        probs = self.forward(video, side).mean(0)  # views averaged
        k = min(topk, probs.numel())
        p, i = probs.topk(k)
        return Prediction(path, [(self.ck.classes[j], float(q)) for q, j in zip(p.tolist(), i.tolist())],
                          frame_indices=clips[0].indices)

    def predict(self, paths: Sequence[str | Path], *, topk: int = 5, strict: bool = False) -> list[Prediction]:
        out = []
        for p in paths:
            try:
                out.append(self.predict_one(p, topk=topk))
            except VideoError as exc:
                if strict:
                    raise
                log.error("%s", exc)
                out.append(Prediction(Path(p), [], error=str(exc)))
        return out
