"""Predict classes for video files with a checkpoint directory (nothing else needed)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from vidrec.data.build import build_transform, resolved_clip
from vidrec.engine.checkpoint import LoadedCheckpoint, load_checkpoint
from vidrec.errors import VidrecError, VideoError
from vidrec.video.decode import AutoDecoder
from vidrec.video.sampling import multi_view_indices

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
    """Load once, predict many. ``views`` clips per video are averaged (softmax)."""

    def __init__(
        self, checkpoint: str | Path | LoadedCheckpoint, *, device: str = "cpu", views: int | None = None, backend: str = "auto"
    ) -> None:
        self.ck = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else _load(checkpoint, device, backend)
        self.device = torch.device(device)
        cfg = self.ck.cfg
        self.spec = self.ck.model.input_spec  # type: ignore[attr-defined]
        self.num_frames, self.image_size = resolved_clip(cfg, self.spec)
        self.transform = build_transform(cfg, self.spec, self.ck.classes, train=False)
        self.views = views or cfg.data.test_views
        self.decoder = AutoDecoder()
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

    def clip_indices(self, num_frames: int) -> list[list[int]]:
        cfg = self.ck.cfg
        mode = "segments" if cfg.data.sampler == "segments" else "dense"
        return multi_view_indices(num_frames, self.num_frames, cfg.data.stride, self.views, mode=mode)  # type: ignore[arg-type]

    @torch.no_grad()
    def predict_one(self, path: str | Path, *, topk: int = 5) -> Prediction:
        path = Path(path)
        info = self.decoder.info(path)
        if info.num_frames <= 0:
            raise VideoError(f"{path}: the video has no frames")
        views = self.clip_indices(info.num_frames)
        short = min(info.width, info.height) or 1
        size = None
        target = round(self.image_size * 8 / 7)
        if short > target:
            size = (max(2, round(info.height * target / short)), max(2, round(info.width * target / short)))
        clips = [self.transform(self.decoder.decode(path, idx, size=size)) for idx in views]
        video = torch.stack(clips).to(self.device)  # (V, C, T, H, W)
        side: dict[str, torch.Tensor] = {}
        if self.side_keys:
            per_view = [self._side_inputs(path, idx, info) for idx in views]
            side = {k: torch.stack([v[k] for v in per_view]).to(self.device) for k in self.side_keys if k in per_view[0]}
        probs = self.ck.model(video, **side).float().softmax(1).mean(0)
        k = min(topk, probs.numel())
        p, i = probs.topk(k)
        return Prediction(path, [(self.ck.classes[j], float(q)) for q, j in zip(p.tolist(), i.tolist())], frame_indices=views[0])

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
