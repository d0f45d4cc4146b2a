"""Contrastive video–text training and retrieval evaluation (``task: retrieval``).

- captions in the MSR-VTT JSON layout: ``{"videos": [{"video_id", "split"}], "sentences":
  [{"video_id", "caption"}]}`` (the synthetic dataset writes ``captions.json`` that way);
- :class:`CaptionClipDataset`: the one clip dataset plus a ``caption`` per sample (a random one of
  the video's captions in training, the first in evaluation);
- :func:`contrastive_loss`: symmetric InfoNCE over the batch (CLIP / CLIP4Clip);
- :func:`retrieval_step` (what the trainer calls per batch) and :func:`evaluate_retrieval`
  (text→video and video→text R@1/5/10, median and mean rank);
- the ``msrvtt`` dataset loader: videos ``<root>/videos/<video_id>.mp4`` (or ``data.videos``) and
  ``<root>/MSRVTT_data.json`` (or ``data.captions``), subsets from the JSON's ``split``.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vidrec.data.records import RecordSet, VideoRecord, register_dataset
from vidrec.errors import DatasetError
from vidrec.utils.device import autocast
from vidrec.video.decode import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

_SPLITS = {"train": "train", "validate": "val", "val": "val", "validation": "val", "test": "test"}
_EPOCH_STRIDE = 1 << 32  # as in vidrec.data.dataset: sampler keys carry the epoch


# --------------------------------------------------------------------------------------------
# captions


def read_captions(path: str | Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``(video_id → captions, video_id → subset)`` from an MSR-VTT style JSON file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such captions file (MSR-VTT JSON: {{\"videos\": [...], \"sentences\": [...]}})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("sentences"), list):
        raise DatasetError(f"{path}: expected an object with a \"sentences\" list of {{\"video_id\", \"caption\"}} (MSR-VTT layout)")
    caps: dict[str, list[str]] = defaultdict(list)
    for i, s in enumerate(data["sentences"]):
        if not isinstance(s, dict) or "video_id" not in s or not isinstance(s.get("caption"), str):
            raise DatasetError(f"{path}: sentences[{i}] needs \"video_id\" and a string \"caption\"")
        if s["caption"].strip():
            caps[str(s["video_id"])].append(s["caption"].strip())
    splits: dict[str, str] = {}
    for i, v in enumerate(data.get("videos", [])):
        if not isinstance(v, dict) or "video_id" not in v:
            raise DatasetError(f"{path}: videos[{i}] needs a \"video_id\"")
        split = str(v.get("split", "train")).lower()
        if split not in _SPLITS:
            raise DatasetError(f"{path}: videos[{i}] has split {split!r}; expected train, validate or test")
        splits[str(v["video_id"])] = _SPLITS[split]
    return dict(caps), splits


@register_dataset("msrvtt")
def load_msrvtt(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    captions: str | None = None,
    videos: str | None = None,
) -> RecordSet:
    """MSR-VTT (or any captioned folder in its JSON layout): records per ``split`` of the JSON.

    ``captions``: the JSON file (default ``<root>/MSRVTT_data.json`` or ``<root>/captions.json``);
    ``videos``: the video folder (default ``<root>/videos``, else ``<root>``).
    """
    root = Path(root).expanduser()
    cap_file = Path(captions) if captions else next(
        (root / n for n in ("MSRVTT_data.json", "captions.json") if (root / n).is_file()), root / "MSRVTT_data.json"
    )
    caps, splits = read_captions(cap_file)
    vdir = Path(videos) if videos else (root / "videos" if (root / "videos").is_dir() else root)
    files = {p.stem: p for p in vdir.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES} if vdir.is_dir() else {}
    subsets: dict[str, list[VideoRecord]] = {"train": [], "val": [], "test": []}
    problems: list[str] = []
    for vid, subset in sorted(splits.items(), key=lambda kv: kv[0]):
        f = files.get(vid)
        if f is None:
            problems.append(f"{vid}: no video file under {vdir}")
            continue
        if vid not in caps:
            problems.append(f"{vid}: no caption in {cap_file}")
            continue
        subsets[subset].append(VideoRecord(path=f, label=-1, video_id=vid, meta={"captions": caps[vid]}))
    if strict and problems:
        raise DatasetError(f"{cap_file}: {len(problems)} problems, first: {problems[0]}")
    if not any(subsets.values()):
        raise DatasetError(f"{cap_file}: no captioned video found under {vdir} ({problems[0] if problems else 'empty lists'})")
    return RecordSet(subsets=subsets, classes=["video"], problems=problems, info={"captions": cap_file})


def captions_for(records: Sequence[VideoRecord], captions: Mapping[str, list[str]] | None = None) -> tuple[list[VideoRecord], list[list[str]]]:
    """Keep records that have a caption: from ``captions`` (by video_id) or from ``record.meta``."""
    kept, caps = [], []
    missing = 0
    for r in records:
        c = list(captions.get(r.video_id, [])) if captions is not None else []
        if not c:
            c = list(r.meta.get("captions") or ([r.meta["caption"]] if r.meta.get("caption") else []))
        if c:
            kept.append(r)
            caps.append(c)
        else:
            missing += 1
    if missing:
        log.warning("%d videos have no caption and are left out of retrieval training/evaluation", missing)
    if not kept:
        raise DatasetError("no video has a caption: give retrieval.captions=FILE.json (MSR-VTT layout) or a captioned dataset")
    return kept, caps


class CaptionClipDataset(Dataset[dict[str, Any]]):
    """A :class:`~vidrec.data.dataset.VideoClipDataset` whose samples also carry ``caption``."""

    def __init__(self, clips: Dataset[dict[str, Any]], captions: Sequence[Sequence[str]], *, train: bool, seed: int = 0) -> None:
        self.clips = clips
        self.captions = [list(c) for c in captions]
        self.train = train
        self.seed = seed

    def __len__(self) -> int:
        return len(self.clips)  # type: ignore[arg-type]

    def __getitem__(self, key: int) -> dict[str, Any]:
        sample = self.clips[key]
        caps = self.captions[int(sample["index"])]
        if self.train and len(caps) > 1:
            epoch = int(key) // _EPOCH_STRIDE
            rng = np.random.default_rng((self.seed, epoch, int(sample["index"]), 7))
            sample["caption"] = caps[int(rng.integers(len(caps)))]
        else:
            sample["caption"] = caps[0]
        return sample

    def set_epoch(self, epoch: int) -> None:  # the sampler carries the epoch; kept for loaders that ask
        return None


# --------------------------------------------------------------------------------------------
# loss, step, metrics


def contrastive_loss(video: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE: pair i of ``video`` (B, E) and ``text`` (B, E) is the positive, the rest negatives."""
    v = F.normalize(video.float(), dim=-1)
    t = F.normalize(text.float(), dim=-1)
    logits = logit_scale * v @ t.T  # (B, B) video × text
    target = torch.arange(v.shape[0], device=v.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _bare(model: nn.Module) -> nn.Module:
    from vidrec.engine.checkpoint import unwrap

    return unwrap(model)


def _as_input(bare: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """uint8 clips (as the reader hands them over) → float normalised with the model's mean/std; float passes."""
    if video.dtype != torch.uint8:
        return video
    from vidrec.video.transforms import VideoNormalize

    spec = bare.input_spec  # type: ignore[attr-defined]
    return VideoNormalize(spec.mean, spec.std)(video)


def retrieval_step(model: nn.Module, batch: Mapping[str, Any], *, temperature: float | None = None) -> torch.Tensor:
    """The loss of one batch: encode ``batch["video"]`` and ``batch["caption"]``, symmetric InfoNCE.

    ``temperature=None`` uses the model's learnable CLIP logit scale; a number fixes it.
    """
    bare = _bare(model)
    video = _as_input(bare, batch["video"])
    tok = bare.tokenize(list(batch["caption"]), device=video.device)  # type: ignore[operator]
    v, t = model(video, input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
    scale = (1.0 / temperature) if temperature else bare.logit_scale()  # type: ignore[operator]
    return contrastive_loss(v, t, scale)


def retrieval_metrics(sim: torch.Tensor) -> dict[str, float]:
    """R@1/5/10, median and mean rank for text→video (rows of ``sim``: texts, columns: videos,
    pair i matches i) and video→text (the transpose)."""
    out: dict[str, float] = {}
    for name, s in (("t2v", sim), ("v2t", sim.T)):
        diag = s.diagonal()[:, None]
        ranks = (s > diag).sum(dim=1).float() + 1  # 1 = the match scored highest (ties count in its favour)
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = float((ranks <= k).float().mean())
        out[f"{name}_median_rank"] = float(ranks.median())
        out[f"{name}_mean_rank"] = float(ranks.mean())
    out["num_pairs"] = float(sim.shape[0])
    out["chance_r1"] = 1.0 / max(sim.shape[0], 1)
    return out


@torch.no_grad()
def evaluate_retrieval(model: nn.Module, loader: DataLoader[Any], *, accelerator: Any = None, temperature: float | None = None,
                       normalize: Any = None) -> dict[str, float]:
    """Embed every (video, caption) pair of ``loader`` and rank all against all.

    Returns the metrics of :func:`retrieval_metrics` plus ``loss`` (InfoNCE over the whole set).
    Under accelerate, embeddings are gathered from every process first.
    """
    bare = _bare(model)
    was_training = model.training
    model.eval()
    vids, txts, idx = [], [], []
    device = accelerator.device if accelerator is not None else next(bare.parameters()).device
    for batch in loader:
        video = batch["video"].to(device)
        video = normalize(video) if normalize is not None else _as_input(bare, video)  # uint8 → normalised float, on the device
        tok = bare.tokenize(list(batch["caption"]), device=device)  # type: ignore[operator]
        with accelerator.autocast() if accelerator is not None else autocast(device):  # bf16 on a GPU, fp32 on the CPU
            v, t = model(video, input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        i = torch.as_tensor(batch["index"], device=device)
        if accelerator is not None:
            v, t, i = accelerator.gather_for_metrics((v.contiguous(), t.contiguous(), i))
        vids.append(F.normalize(v.float(), dim=-1))
        txts.append(F.normalize(t.float(), dim=-1))
        idx.append(i)
    model.train(was_training)
    v_all, t_all, i_all = torch.cat(vids), torch.cat(txts), torch.cat(idx)
    order = torch.argsort(i_all)
    v_all, t_all = v_all[order], t_all[order]
    sim = t_all @ v_all.T  # (texts, videos)
    metrics = retrieval_metrics(sim.cpu())
    scale = (1.0 / temperature) if temperature else float(bare.logit_scale())  # type: ignore[operator]
    metrics["loss"] = float(contrastive_loss(v_all, t_all, scale))
    return metrics


def build_retrieval_datasets(cfg: Any, rs: RecordSet, spec: Any) -> tuple[CaptionClipDataset, CaptionClipDataset | None]:
    """Train / val caption datasets for ``cfg`` (captions from ``retrieval.captions`` or the dataset)."""
    from vidrec.data.build import build_dataset, train_records

    caps = read_captions(cfg.retrieval.captions)[0] if cfg.retrieval.captions else None
    train_recs, train_caps = captions_for(train_records(cfg, rs), caps)
    train = CaptionClipDataset(build_dataset(cfg, train_recs, rs.classes, spec, train=True, recordset=rs), train_caps,
                               train=True, seed=cfg.train.seed)
    val = None
    val_records = rs.subsets.get(cfg.data.val_subset) or []
    if val_records:
        val_recs, val_caps = captions_for(val_records, caps)
        val = CaptionClipDataset(build_dataset(cfg, val_recs, rs.classes, spec, train=False, recordset=rs), val_caps, train=False)
    return train, val


def retrieval_param_groups(model: nn.Module, cfg: Any) -> list[dict[str, Any]]:
    """Optimizer groups for ``retrieval.mode``: CLIP towers at ``retrieval.clip_lr``, new modules at
    ``retrieval.module_lr``, merging / prompts at ``retrieval.merge_lr`` / ``prompt_lr`` when set (the
    model's :meth:`param_groups`); the temperature in a group of its own (``module_lr``, no weight
    decay) when it is learned, in none when it is fixed."""
    bare = _bare(model)
    if not hasattr(bare, "param_groups"):
        from vidrec.errors import ConfigError

        raise ConfigError(f"task: retrieval needs a video–text model (model.name=clip_video or clip_video_tiny), not {type(bare).__name__}")
    r = cfg.retrieval
    groups = bare.param_groups(  # type: ignore[operator]
        r.mode, clip_lr=r.clip_lr, module_lr=r.module_lr, weight_decay=cfg.train.weight_decay, merge_lr=r.merge_lr,
        prompt_lr=r.prompt_lr,
    )
    scale = bare.temperature_parameter()  # type: ignore[operator]
    for g in groups:
        g["params"] = [p for p in g["params"] if p is not scale]
    groups = [g for g in groups if g["params"]]
    if r.learn_temperature:
        groups.append({"params": [scale], "lr": r.module_lr, "weight_decay": 0.0, "name": "temperature"})
    return groups


def init_temperature(model: nn.Module, cfg: Any) -> None:
    """Start the learnable scale at ``1 / retrieval.temperature`` when one is given (a fixed one is
    passed to the loss instead; ``None`` keeps the model's own)."""
    r = cfg.retrieval
    if r.temperature is not None and r.learn_temperature:
        with torch.no_grad():
            _bare(model).temperature_parameter().fill_(math.log(1.0 / r.temperature))  # type: ignore[operator]


def fixed_temperature(cfg: Any) -> float | None:
    """The temperature the loss must use as a constant, or None for the model's (learned) scale."""
    r = cfg.retrieval
    return r.temperature if r.temperature is not None and not r.learn_temperature else None


def evaluate_retrieval_checkpoint(checkpoint: str | Path, *, cfg: Any = None, subset: str | None = None, device: str = "auto",
                                  batch_size: int | None = None, workers: int | None = None) -> dict[str, float]:
    """``vidrec eval`` for a retrieval checkpoint: t2v / v2t R@1/5/10, median and mean rank on ``subset``
    (``device``, ``batch_size``, ``workers`` as for :func:`vidrec.engine.run.evaluate_checkpoint`)."""
    from vidrec.data.build import build_dataset, build_loader, build_normalizer, load_dataset
    from vidrec.engine.checkpoint import load_checkpoint
    from vidrec.utils.device import resolve_device

    ck = load_checkpoint(checkpoint, map_location=resolve_device(device))
    cfg = cfg or ck.cfg
    rs = load_dataset(cfg)
    subset = subset or cfg.eval.subset
    caps = read_captions(cfg.retrieval.captions)[0] if cfg.retrieval.captions else None
    recs, rec_caps = captions_for(rs.subset(subset), caps)
    ds = CaptionClipDataset(build_dataset(cfg, recs, rs.classes, ck.model.input_spec, train=False, recordset=rs), rec_caps, train=False)
    loader = build_loader(cfg, ds, train=False, batch_size=batch_size or cfg.eval.batch_size, workers=workers)  # type: ignore[arg-type]
    metrics = evaluate_retrieval(ck.model, loader, temperature=fixed_temperature(cfg), normalize=build_normalizer(cfg, ck.model.input_spec))
    metrics["subset"] = subset  # type: ignore[assignment]
    return metrics
