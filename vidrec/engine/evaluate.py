"""Evaluation: clip- and video-level top-k, mean class accuracy, per-class accuracy, confusion matrix.

Multi-view testing needs no special case: clips of one video share ``index``; their softmax
scores are averaged into one video-level prediction. Clips arrive as uint8 and are normalised
per batch on the device. Evaluation never scores a stand-in: a video that cannot be read comes
as a placeholder with ``failed=1``, is left out of every metric, and is listed in
:attr:`EvalResult.unreadable`. :func:`evaluate_checkpoint` runs this on a checkpoint and a subset of its dataset
(``vidrec eval`` for a classifier; :mod:`vidrec.engine.retrieval` has the retrieval one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_confusion_matrix
from tqdm.auto import tqdm

from vidrec.config import Config
from vidrec.data.build import build_dataset, build_loader, build_normalizer, load_recordset
from vidrec.data.records import RecordSet
from vidrec.engine.checkpoint import LoadedCheckpoint, load_checkpoint
from vidrec.errors import DatasetError, VidrecError
from vidrec.models.base import input_spec_of
from vidrec.utils.device import autocast, resolve_device

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    loss: float
    top1: float  # video-level (clip-level when one view)
    top5: float
    mean_class_acc: float
    clip_top1: float
    per_class: list[float]  # accuracy per class, NaN-free (classes with no video get -1)
    support: list[int]
    confusion: torch.Tensor  # (K, K) rows = true class
    probs: torch.Tensor  # (N, K) video-level probabilities
    labels: torch.Tensor  # (N,)
    indices: torch.Tensor  # (N,) record indices
    num_clips: int
    extra: dict[str, Any] = field(default_factory=dict)
    unreadable: dict[int, str] = field(default_factory=dict)  # record index -> why it could not be read

    def summary(self) -> dict[str, Any]:
        return {
            "val_loss": self.loss,
            "val_top1": self.top1,
            "val_top5": self.top5,
            "mean_class_acc": self.mean_class_acc,
            "clip_top1": self.clip_top1,
            "num_videos": int(self.labels.numel()),
            "num_clips": self.num_clips,
            "num_unreadable": len(self.unreadable),
        }


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    loader: DataLoader[Any],
    *,
    num_classes: int,
    accelerator: Any = None,
    side_keys: tuple[str, ...] = (),
    topk: int = 5,
    progress: bool = True,
    desc: str = "evaluate",
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> EvalResult:
    """Run ``model`` over ``loader``; under accelerate, results are gathered from every process.

    ``normalize`` turns the uint8 batch into the model's float input on the device
    (:class:`~vidrec.video.transforms.VideoNormalize`); ``None`` takes ``video`` as it comes.
    """
    was_training = model.training
    model.eval()
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    logits_all, labels_all, index_all, failed_all, view_all = [], [], [], [], []
    unreadable: dict[int, str] = {}
    main = accelerator is None or accelerator.is_main_process
    for batch in tqdm(loader, desc=desc, disable=not (progress and main), leave=False, dynamic_ncols=True):
        video = batch["video"].to(device, non_blocking=True)
        if normalize is not None:
            video = normalize(video)
        side = {k: batch[k].to(device) for k in side_keys if k in batch}
        with accelerator.autocast() if accelerator is not None else autocast(device):  # bf16 on a GPU, fp32 on the CPU
            logits = model(video, **side)
        index = torch.as_tensor(batch["index"], device=device)
        failed = (
            torch.as_tensor(batch["failed"], device=device).bool()
            if "failed" in batch
            else torch.zeros_like(index, dtype=torch.bool)
        )
        for i, bad, why in zip(index.tolist(), failed.tolist(), batch.get("error", [""] * len(index))):
            if bad:
                unreadable[int(i)] = str(why)
        logits, labels = logits.float(), batch["label"].to(device)
        view = torch.as_tensor(batch.get("clip_index", torch.zeros_like(index)), device=device)
        if accelerator is not None:
            logits, labels, index, failed, view = accelerator.gather_for_metrics((logits, labels, index, failed, view))
        logits_all.append(logits.cpu())
        labels_all.append(labels.cpu())
        index_all.append(index.cpu())
        failed_all.append(failed.cpu())
        view_all.append(view.cpu())
    if was_training:
        model.train()
    keep = ~torch.cat(failed_all)  # a placeholder for an unreadable video is never scored
    if accelerator is not None and accelerator.num_processes > 1:
        keep &= first_occurrence(torch.cat(index_all), torch.cat(view_all))
    for i in torch.cat(index_all)[~keep].tolist():
        unreadable.setdefault(int(i), "unreadable (see the log)")
    logits = torch.cat(logits_all)[keep]
    labels = torch.cat(labels_all)[keep]
    index = torch.cat(index_all)[keep]
    res = summarise(logits, labels, index, num_classes=num_classes, topk=topk)
    res.unreadable = dict(sorted(unreadable.items()))
    return res


def first_occurrence(index: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
    """True at the first clip of each (video, view): under several processes the loader pads its last
    batches with repeated clips so that every process gets as many; ``gather_for_metrics`` drops them
    where accelerate knows the padding, and this drops whatever it could not (any sampler, any count)."""
    key = index.long() * (int(view.max()) + 1 if view.numel() else 1) + view.long()  # (N,)
    order = torch.sort(key, stable=True).indices
    first = torch.ones_like(key, dtype=torch.bool)
    first[order[1:]] = key[order[1:]] != key[order[:-1]]
    return first


def summarise(
    logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, *, num_classes: int, topk: int = 5
) -> EvalResult:
    """Metrics from clip logits; clips sharing ``index`` are averaged (softmax) per video."""
    valid = labels >= 0
    clip_loss = F.cross_entropy(logits[valid], labels[valid]).item() if valid.any() else float("nan")
    clip_top1 = (logits.argmax(1)[valid] == labels[valid]).float().mean().item() if valid.any() else float("nan")
    probs = logits.softmax(1)
    uniq, inverse = torch.unique(index, return_inverse=True)  # videos, sorted by record index
    vprobs = torch.zeros(len(uniq), num_classes).index_add_(0, inverse, probs)
    counts = torch.zeros(len(uniq)).index_add_(0, inverse, torch.ones(len(index)))
    vprobs /= counts[:, None]
    vlabels = torch.full((len(uniq),), -1, dtype=torch.long).scatter_(0, inverse, labels)
    ok = vlabels >= 0
    p, y = vprobs[ok], vlabels[ok]
    k = min(topk, num_classes)
    if y.numel():
        top1 = multiclass_accuracy(p, y, num_classes=num_classes, average="micro").item()
        topk_acc = multiclass_accuracy(p, y, num_classes=num_classes, top_k=k, average="micro").item()
        per_class_t = multiclass_accuracy(p, y, num_classes=num_classes, average="none")
        support = torch.bincount(y, minlength=num_classes)
        per_class = [float(a) if s > 0 else -1.0 for a, s in zip(per_class_t.tolist(), support.tolist())]
        present = [a for a, s in zip(per_class_t.tolist(), support.tolist()) if s > 0]
        mean_class = sum(present) / len(present)
        confusion = multiclass_confusion_matrix(p, y, num_classes=num_classes)
    else:
        top1 = topk_acc = mean_class = float("nan")
        per_class, support = [-1.0] * num_classes, torch.zeros(num_classes, dtype=torch.long)
        confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    return EvalResult(
        loss=clip_loss,
        top1=top1,
        top5=topk_acc,
        mean_class_acc=mean_class,
        clip_top1=clip_top1,
        per_class=per_class,
        support=support.tolist(),
        confusion=confusion,
        probs=vprobs,
        labels=vlabels,
        indices=uniq,
        num_clips=int(index.numel()),
    )


# --------------------------------------------------------------------------------------------
# a checkpoint on a subset of its dataset (vidrec eval, classification)


def load_subset_records(cfg: Config, subset: str) -> RecordSet:
    """The dataset, for work on one ``subset``: with ``data.strict`` only that subset's problems stop it
    (a broken line in the train list does not stop an evaluation of val)."""
    if not cfg.data.strict:
        return load_recordset(cfg)
    lenient = cfg.model_copy(deep=True)
    lenient.data.strict = False
    rs = load_recordset(lenient)
    problems = rs.problems_for(subset)
    if problems:
        more = (
            f" ({len(problems) - 1} more problems concern it; vidrec data show lists them)" if len(problems) > 1 else ""
        )
        raise DatasetError(f"data.strict: {problems[0]}{more}")
    return rs


@dataclass
class EvalOutcome:
    result: EvalResult
    classes: list[str]
    checkpoint: LoadedCheckpoint
    video_ids: list[str]
    unreadable: dict[str, str] = field(default_factory=dict)  # video path -> why it could not be read (never scored)


def eval_dataset(ck: LoadedCheckpoint, cfg: Config, records: list[Any], *, views: int, recordset: Any = None) -> Any:
    """The clips ``vidrec eval`` scores: the checkpoint's evaluation view(s), read by the one reader."""
    spec = input_spec_of(ck.model)
    return build_dataset(cfg, records, ck.classes, spec, train=False, views=views, recordset=recordset)


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    cfg: Config | None = None,
    subset: str | None = None,
    views: int | None = None,
    progress: bool = True,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
) -> EvalOutcome:
    """Evaluate a checkpoint directory on a subset of its dataset (or of ``cfg``'s when given).

    ``device``: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``;
    ``workers`` decoding processes (default ``data.num_workers``) feed batches of ``batch_size``
    clips (default ``eval.batch_size``)."""
    ck = load_checkpoint(checkpoint, map_location=resolve_device(device))
    cfg = cfg or ck.cfg
    subset = subset or cfg.eval.subset
    rs = load_subset_records(cfg, subset)
    if rs.classes != ck.classes:
        raise VidrecError(
            f"the checkpoint's {len(ck.classes)} classes differ from dataset {cfg.data.dataset!r}'s {len(rs.classes)}; "
            "evaluate on the dataset it was trained on"
        )
    records = rs.subset(subset)
    spec = input_spec_of(ck.model)
    n_views = views or cfg.eval.views
    ds = eval_dataset(ck, cfg, records, views=n_views, recordset=rs)
    loader = build_loader(cfg, ds, train=False, batch_size=batch_size or cfg.eval.batch_size, workers=workers)
    side = tuple(getattr(spec, "side_inputs", ()) or ())
    res = evaluate_model(
        ck.model,
        loader,
        num_classes=len(ck.classes),
        side_keys=side,
        progress=progress,
        desc=f"eval {subset}",
        normalize=build_normalizer(cfg, spec),
    )
    ids = [records[i].video_id for i in res.indices.tolist()]
    unreadable = {str(records[i].path): why.removeprefix(f"{records[i].path}: ") for i, why in res.unreadable.items()}
    if unreadable:
        log.warning(
            "%d of %d videos could not be read and were left out of every metric", len(unreadable), len(records)
        )
    return EvalOutcome(result=res, classes=ck.classes, checkpoint=ck, video_ids=ids, unreadable=unreadable)
