"""Predict classes for video files with a checkpoint directory (nothing else needed).

:meth:`Predictor.predict` reads many videos through the one dataset and DataLoader (workers
decode while the model runs batches of clips, on the GPU when there is one) and averages the
softmax of each video's views; :meth:`Predictor.predict_one` reads one video in the calling
process (the web demo, the demo's single clip).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from vidrec.data.build import build_normalizer, build_reader, resolved_clip
from vidrec.engine.checkpoint import LoadedCheckpoint, load_checkpoint
from vidrec.data.records import VideoRecord
from vidrec.errors import VidrecError, VideoError
from vidrec.models.base import input_spec_of
from vidrec.utils.device import autocast, resolve_device
from vidrec.video.reader import Clip

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    path: Path
    topk: list[tuple[str, float]]  # (class, probability), best first
    error: str | None = None
    frame_indices: list[int] | None = None
    video_id: str | None = None  # the id a submission file uses (file stem, or the dataset's id)

    @property
    def id(self) -> str:
        return self.video_id if self.video_id is not None else (self.path.stem if self.path.suffix else self.path.name)

    @property
    def label(self) -> str | None:
        return self.topk[0][0] if self.topk else None


def _load(checkpoint: str | Path, device: str, backend: str) -> LoadedCheckpoint:
    """A checkpoint directory (PyTorch), or an exported .onnx file run by onnxruntime.

    ``backend``: auto, torch, onnx."""
    from vidrec.engine.onnx_backend import load_onnx, resolve_backend

    if resolve_backend(checkpoint, backend) == "onnx":
        if str(device) not in ("cpu", "auto"):
            raise VidrecError(
                f"--device {device}: the onnx backend runs on the CPU; use --device cpu or the PyTorch checkpoint"
            )
        return load_onnx(checkpoint)
    return load_checkpoint(checkpoint, map_location=resolve_device(device))


class Predictor:
    """Load once, predict many. ``views`` clips per video are averaged (softmax).

    Clips come from the same :class:`~vidrec.video.reader.ClipReader` as training's evaluation
    view (the checkpoint's frame sampler, ``data.decode_size`` and eval crop), as uint8, normalised on
    the device. :meth:`load` (decoding, no model) and :meth:`forward` (model, no decoding) are
    separate so that a caller can decode in workers and batch several videos.
    """

    def __init__(
        self,
        checkpoint: str | Path | LoadedCheckpoint,
        *,
        device: str = "auto",
        views: int | None = None,
        backend: str = "auto",
    ) -> None:
        self.ck = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else _load(checkpoint, device, backend)
        self.onnx = not isinstance(self.ck.model, torch.nn.Module)  # onnxruntime runs on the CPU
        self.device = torch.device("cpu") if self.onnx else resolve_device(device)
        if not self.onnx:
            self.ck.model.to(self.device)
        cfg = self.ck.cfg
        self.spec = input_spec_of(self.ck.model)
        self.num_frames, self.image_size = resolved_clip(cfg, self.spec)
        self.reader = build_reader(cfg, self.spec, self.ck.classes, train=False)
        self.normalize = build_normalizer(cfg, self.spec)
        self.views = views or cfg.eval.views
        self.side_keys = tuple(getattr(self.spec, "side_inputs", ()) or ())
        self._dataset: tuple[Any, dict[str, VideoRecord]] | None = None  # (record set, path / video id → record)
        self._side_fns: list | None = None

    def _dataset_record(self, path: Path, video_id: str) -> VideoRecord:
        """The checkpoint dataset's own record of a video (by path, else by id): a model with side
        inputs reads them from its annotations. The dataset is loaded once per predictor."""
        if self._dataset is None:
            from vidrec.data.build import load_recordset

            rs = load_recordset(self.ck.cfg)
            lookup: dict[str, VideoRecord] = {}
            for recs in rs.subsets.values():
                for r in recs:
                    lookup.setdefault(str(Path(r.path).resolve()), r)
                    lookup.setdefault(r.video_id, r)
            self._dataset = (rs, lookup)
        lookup = self._dataset[1]
        record = lookup.get(str(path.resolve())) or lookup.get(video_id)
        if record is None:
            cfg = self.ck.cfg
            raise VidrecError(
                f"{path}: model {cfg.model.name!r} also needs {', '.join(self.side_keys)}, which come from the "
                f"annotations of its dataset ({cfg.data.dataset} at {cfg.data.root}); this video is not in it"
            )
        return record

    def _side_inputs(self, path: Path, indices: list[int], info: Any) -> dict[str, torch.Tensor]:
        """Side inputs (boxes, joints, crops) of a dataset video: they come from its annotations, not the file."""
        if not self.side_keys:
            return {}
        record = self._dataset_record(path, path.stem)
        if self._side_fns is None:
            from vidrec.data.build import side_inputs_for

            self._side_fns = side_inputs_for(self.ck.cfg, self.spec, self._dataset[0] if self._dataset else None)
        out: dict[str, torch.Tensor] = {}
        for fn in self._side_fns:
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
        with autocast(self.device):  # bf16 on a GPU (as vidrec eval), fp32 elsewhere
            logits = self.ck.model(x, **side)
        return logits.float().softmax(1)

    def predict_one(self, path: str | Path, *, topk: int = 5) -> Prediction:
        path = Path(path)
        video, side, clips = self.load(path)
        probs = self.forward(video, side).mean(0)  # views averaged
        k = min(topk, probs.numel())
        p, i = probs.topk(k)
        return Prediction(
            path,
            [(self.ck.classes[j], float(q)) for q, j in zip(p.tolist(), i.tolist())],
            frame_indices=clips[0].indices,
        )

    def records_for(self, paths: Sequence[str | Path]) -> tuple[list[VideoRecord], Any]:
        """Records for video files (their id: the file or folder name without suffix); for a model
        with side inputs, the dataset's own records of those videos (their annotations) and its record set."""
        ids = [(Path(p), Path(p).stem if Path(p).is_file() else Path(p).name) for p in paths]
        if not self.side_keys:
            return [VideoRecord(path=p, label=-1, video_id=v) for p, v in ids], None
        records = [self._dataset_record(p, v) for p, v in ids]
        return records, self._dataset[0] if self._dataset else None

    def predict(
        self,
        paths: Sequence[str | Path],
        *,
        topk: int = 5,
        strict: bool = False,
        batch_size: int | None = None,
        workers: int | None = None,
        progress: bool = False,
    ) -> list[Prediction]:
        """Predict video files (or frame folders) in batches; see :meth:`predict_records`."""
        records, rs = self.records_for(paths)
        return self.predict_records(
            records, recordset=rs, topk=topk, strict=strict, batch_size=batch_size, workers=workers, progress=progress
        ).predictions

    def predict_records(
        self,
        records: Sequence[VideoRecord],
        *,
        recordset: Any = None,
        topk: int = 5,
        strict: bool = False,
        batch_size: int | None = None,
        workers: int | None = None,
        progress: bool = False,
    ) -> PredictRun:
        """Predict ``records`` through the one dataset and DataLoader: ``workers`` processes decode
        (default ``data.num_workers``) while the model runs ``batch_size`` clips at a time (default
        ``eval.batch_size``); each video's views are averaged. A video that cannot be read gets a
        :class:`Prediction` with its ``error`` (``strict``: a :class:`VideoError` at the first)."""
        from tqdm.auto import tqdm

        from vidrec.data.build import build_dataset, build_loader

        t0 = time.perf_counter()
        cfg = self.ck.cfg
        ds = build_dataset(
            cfg, list(records), self.ck.classes, self.spec, train=False, views=self.views, recordset=recordset
        )
        ds.on_error = "mark"  # never a stand-in; with --strict the first failure stops the run below, in this process
        loader = build_loader(cfg, ds, train=False, batch_size=batch_size or cfg.eval.batch_size, workers=workers)
        n = len(records)
        sums = torch.zeros(n, len(self.ck.classes))
        errors: dict[int, str] = {}
        first_idx: dict[int, list[int]] = {}
        for batch in tqdm(
            loader, desc="predict", unit="clip", total=len(loader), disable=not progress, dynamic_ncols=True
        ):
            index = torch.as_tensor(batch["index"])
            failed = torch.as_tensor(batch["failed"]).bool()
            for i, bad, why in zip(index.tolist(), failed.tolist(), batch["error"]):
                if bad:
                    if strict:
                        raise VideoError(why)
                    errors.setdefault(int(i), str(why))
            side = {k: batch[k] for k in self.side_keys if k in batch}
            probs = self.forward(batch["video"], side).cpu()  # (B, K)
            keep = ~failed
            sums.index_add_(0, index[keep], probs[keep])
            for i, view, fr in zip(index.tolist(), batch["clip_index"], batch["frame_indices"]):
                if int(view) == 0:
                    first_idx[int(i)] = [int(f) for f in fr.tolist()]
        out = []
        for i, r in enumerate(records):
            if i in errors:  # the dataset logged it (once per file)
                out.append(Prediction(Path(r.path), [], error=errors[i], video_id=r.video_id))
                continue
            probs = sums[i] / self.views
            k = min(topk, probs.numel())
            p, j = probs.topk(k)
            out.append(
                Prediction(
                    Path(r.path),
                    [(self.ck.classes[c], float(q)) for q, c in zip(p.tolist(), j.tolist())],
                    frame_indices=first_idx.get(i),
                    video_id=r.video_id,
                )
            )
        return PredictRun(out, time.perf_counter() - t0)


@dataclass
class PredictRun:
    """What :meth:`Predictor.predict_records` returns: the predictions, in record order, and the time taken."""

    predictions: list[Prediction] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def videos_per_s(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else 0.0
