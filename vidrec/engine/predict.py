"""Predict classes for video files with a checkpoint directory (nothing else needed)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from vidrec.data.build import build_transform, resolved_clip
from vidrec.engine.checkpoint import LoadedCheckpoint, load_checkpoint
from vidrec.errors import VideoError
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


class Predictor:
    """Load once, predict many. ``views`` clips per video are averaged (softmax)."""

    def __init__(self, checkpoint: str | Path | LoadedCheckpoint, *, device: str = "cpu", views: int | None = None) -> None:
        self.ck = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint, map_location=device)
        self.device = torch.device(device)
        cfg = self.ck.cfg
        self.spec = self.ck.model.input_spec  # type: ignore[attr-defined]
        self.num_frames, self.image_size = resolved_clip(cfg, self.spec)
        self.transform = build_transform(cfg, self.spec, self.ck.classes, train=False)
        self.views = views or cfg.data.test_views
        self.decoder = AutoDecoder()
        side = tuple(getattr(self.spec, "side_inputs", ()) or ())
        if side:
            from vidrec.errors import VidrecError

            raise VidrecError(
                f"model {cfg.model.name!r} also needs {', '.join(side)}, which come from the dataset's box annotations and "
                "stream cache, not from a video file alone; evaluate it on its dataset with "
                f"`vidrec eval --checkpoint {self.ck.path}` instead"
            )

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
        probs = self.ck.model(video).float().softmax(1).mean(0)
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
