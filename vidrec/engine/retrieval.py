"""Contrastive video–text training and retrieval evaluation (``task: retrieval``).

- captions (:mod:`vidrec.data.msrvtt`) and :class:`~vidrec.data.dataset.CaptionClipDataset`, the
  one clip dataset plus a ``caption`` per sample, come from the data package;
- :func:`contrastive_loss`: symmetric InfoNCE over the batch (CLIP / CLIP4Clip), over every process's
  batch under DDP;
- :func:`retrieval_step` (what the trainer calls per batch) and :func:`evaluate_retrieval`
  (text→video and video→text R@1/5/10, median and mean rank);
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from vidrec.data.dataset import CaptionClipDataset
from vidrec.data.msrvtt import captions_for, read_captions
from vidrec.data.records import RecordSet
from vidrec.engine.distributed import all_gather_with_grad
from vidrec.models.base import input_spec_of
from vidrec.utils.device import autocast

log = logging.getLogger(__name__)

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

    spec = input_spec_of(bare)
    return VideoNormalize(spec.mean, spec.std)(video)


def retrieval_step(model: nn.Module, batch: Mapping[str, Any], *, temperature: float | None = None) -> torch.Tensor:
    """The loss of one batch: encode ``batch["video"]`` and ``batch["caption"]``, symmetric InfoNCE.

    Under several processes the InfoNCE runs over the pairs of all of them (gathered with their
    gradients, :func:`~vidrec.engine.distributed.all_gather_with_grad`): the loss and, after DDP's
    averaging, the gradients are those of one process on the concatenated batch.

    ``temperature=None`` uses the model's learnable CLIP logit scale; a number fixes it.
    """
    bare = _bare(model)
    video = _as_input(bare, batch["video"])
    tok = bare.tokenize(list(batch["caption"]), device=video.device)  # type: ignore[operator]
    v, t = model(video, input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
    # (B, E) here → (B_total, E): every process's pairs are negatives for every other process's
    v, t = all_gather_with_grad(v.float()), all_gather_with_grad(t.float())
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
def evaluate_retrieval(
    model: nn.Module,
    loader: DataLoader[Any],
    *,
    accelerator: Any = None,
    temperature: float | None = None,
    normalize: Any = None,
) -> dict[str, float]:
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
        video = (
            normalize(video) if normalize is not None else _as_input(bare, video)
        )  # uint8 → normalised float, on the device
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


def build_retrieval_datasets(
    cfg: Any, rs: RecordSet, spec: Any
) -> tuple[CaptionClipDataset, CaptionClipDataset | None]:
    """Train / val caption datasets for ``cfg`` (captions from ``retrieval.captions`` or the dataset)."""
    from vidrec.data.build import build_dataset, train_records

    caps = read_captions(cfg.retrieval.captions)[0] if cfg.retrieval.captions else None
    train_recs, train_caps = captions_for(train_records(cfg, rs), caps)
    train = CaptionClipDataset(
        build_dataset(cfg, train_recs, rs.classes, spec, train=True, recordset=rs),
        train_caps,
        train=True,
        seed=cfg.train.seed,
    )
    val = None
    val_records = rs.subsets.get(cfg.data.val_subset) or []
    if val_records:
        val_recs, val_caps = captions_for(val_records, caps)
        val = CaptionClipDataset(
            build_dataset(cfg, val_recs, rs.classes, spec, train=False, recordset=rs), val_caps, train=False
        )
    return train, val


def retrieval_param_groups(model: nn.Module, cfg: Any) -> list[dict[str, Any]]:
    """Optimizer groups for ``retrieval.mode``: CLIP towers at ``retrieval.clip_lr``, new modules at
    ``retrieval.module_lr``, merging / prompts at ``retrieval.merge_lr`` / ``prompt_lr`` when set (the
    model's :meth:`param_groups`); the temperature in a group of its own (``module_lr``, no weight
    decay) when it is learned, in none when it is fixed."""
    bare = _bare(model)
    if not hasattr(bare, "param_groups"):
        from vidrec.errors import ConfigError

        raise ConfigError(
            "task: retrieval needs a video–text model (model.name=clip_video or clip_video_tiny), "
            f"not {type(bare).__name__}"
        )
    r = cfg.retrieval
    groups = bare.param_groups(  # type: ignore[operator]
        r.mode,
        clip_lr=r.clip_lr,
        module_lr=r.module_lr,
        weight_decay=cfg.train.weight_decay,
        merge_lr=r.merge_lr,
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


def evaluate_retrieval_checkpoint(
    checkpoint: str | Path,
    *,
    cfg: Any = None,
    subset: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
) -> dict[str, float]:
    """``vidrec eval`` for a retrieval checkpoint: t2v / v2t R@1/5/10, median and mean rank on ``subset``
    (``device``, ``batch_size``, ``workers`` as for :func:`vidrec.engine.run.evaluate_checkpoint`)."""
    from vidrec.data.build import build_dataset, build_loader, build_normalizer, load_recordset
    from vidrec.engine.checkpoint import load_checkpoint
    from vidrec.utils.device import resolve_device

    ck = load_checkpoint(checkpoint, map_location=resolve_device(device))
    cfg = cfg or ck.cfg
    rs = load_recordset(cfg)
    subset = subset or cfg.eval.subset
    caps = read_captions(cfg.retrieval.captions)[0] if cfg.retrieval.captions else None
    recs, rec_caps = captions_for(rs.subset(subset), caps)
    ds = CaptionClipDataset(
        build_dataset(cfg, recs, rs.classes, input_spec_of(ck.model), train=False, recordset=rs), rec_caps, train=False
    )
    loader = build_loader(cfg, ds, train=False, batch_size=batch_size or cfg.eval.batch_size, workers=workers)
    metrics = evaluate_retrieval(
        ck.model, loader, temperature=fixed_temperature(cfg), normalize=build_normalizer(cfg, input_spec_of(ck.model))
    )
    metrics["subset"] = subset  # type: ignore[assignment]
    return metrics
