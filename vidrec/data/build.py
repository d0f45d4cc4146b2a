"""From a :class:`~vidrec.config.Config` to datasets and DataLoaders (the wiring, no logic of its own)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.utils.data import DataLoader

from vidrec.config import Config
from vidrec.data.dataset import CaptionClipDataset, EpochSampler, SideInput, VideoClipDataset
from vidrec.data.records import RecordSet, VideoRecord, load_records
from vidrec.data.side_inputs import SIDE_INPUTS as _SIDE_INPUTS, register_side_input  # noqa: F401  (re-exported)
from vidrec.models.base import InputSpec
from vidrec.utils.proc import worker_init_fn
from vidrec.video.reader import ClipReader
from vidrec.video.sampling import FrameSampler, make_frame_sampler
from vidrec.video.transforms import ClipTransform, VideoNormalize, flip_changes_label

log = logging.getLogger(__name__)


def side_inputs_for(cfg: Config, spec: InputSpec, recordset: RecordSet | None) -> list[SideInput]:
    import importlib

    for mod in ("vidrec.data.boxes", "vidrec.data.streams.side_input"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
    out: list[SideInput] = []
    seen: set[int] = set()
    for key in spec.side_inputs:
        if key not in _SIDE_INPUTS:
            from vidrec.errors import ConfigError

            raise ConfigError(f"model {cfg.model.name!r} needs the input {key!r}, which no data module provides")
        factory = _SIDE_INPUTS[key]
        if id(factory) not in seen:
            seen.add(id(factory))
            out.append(factory(cfg, spec, recordset))
    return out


def resolved_clip(cfg: Config, spec: InputSpec) -> tuple[int, int]:
    """(num_frames, image_size): the config's, or the model's own when unset."""
    return cfg.data.num_frames or spec.num_frames, cfg.data.image_size or spec.image_size


def load_recordset(cfg: Config) -> RecordSet:
    """The configured dataset's records: run its loader on ``data.root`` (synthetic, unset:
    ``<train.out_dir>/data``). A :class:`RecordSet`, not a torch Dataset: :func:`build_dataset` makes that.

    Nothing is written into ``data.root``: the synthetic dataset is generated there only with
    ``data.generate=true`` (``vidrec synth`` and ``vidrec demo`` write it explicitly), so a mistyped
    path is an error naming it, never a new dataset.
    """
    from vidrec.errors import ConfigError

    root = cfg.data.root
    synthetic = cfg.data.dataset == "synthetic"
    if root is None:
        if not synthetic:
            raise ConfigError(f"data.root: dataset {cfg.data.dataset!r} needs its folder: --set data.root=DIR")
        root = cfg.train.out_dir / "data"
    options = dict(cfg.data_options)
    if synthetic:
        options["generate_missing"] = cfg.data.generate
        if cfg.data.generate:
            root.mkdir(parents=True, exist_ok=True)  # asked for: the loader writes the dataset there
    elif cfg.data.generate:
        raise ConfigError(
            f"data.generate: only the synthetic dataset can be generated; {cfg.data.dataset!r} is read from data.root"
        )
    rs = load_records(cfg.data.dataset, root, split=cfg.data.split, strict=cfg.data.strict, **options)
    if cfg.data.limit:
        rs.subsets = {k: v[: cfg.data.limit] for k, v in rs.subsets.items()}
    return rs


def resolved_decode_size(cfg: Config, spec: InputSpec) -> int:
    """``data.decode_size``, or the eval resize size (``image_size * 8/7``) when unset."""
    _, size = resolved_clip(cfg, spec)
    return cfg.data.decode_size or _resize_size(size)


def _resize_size(size: int) -> int:
    return round(size * 8 / 7) if size >= 64 else size


def build_frame_sampler(cfg: Config, spec: InputSpec) -> FrameSampler:
    frames, _ = resolved_clip(cfg, spec)
    return make_frame_sampler(
        cfg.data.sampler, num_frames=frames, stride=cfg.data.stride, target_fps=cfg.data.target_fps
    )


def sample_records(records: list[VideoRecord], n: int, *, seed: int) -> list[VideoRecord]:
    """``n`` of ``records``, the same share of every class, chosen by ``seed``; original order kept.

    Each class's records are shuffled and spread over [0, 1) (the k-th of m at (k + 0.5) / m); the
    ``n`` with the smallest positions are kept, so a class of any size keeps about ``n / len(records)``
    of its videos, and the first N of a class-sorted list (one class only) never happens.
    """
    if n >= len(records):
        return list(records)
    import numpy as np

    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_class.setdefault(r.label, []).append(i)
    pos = np.empty(len(records))
    for idx in by_class.values():
        order = rng.permutation(len(idx))
        pos[np.asarray(idx)[order]] = (np.arange(len(idx)) + rng.random()) / len(idx)  # random phase per class
    keep = sorted(np.argsort(pos, kind="stable")[:n].tolist())
    return [records[i] for i in keep]


def train_records(cfg: Config, rs: RecordSet) -> list[VideoRecord]:
    """The records trained on: ``data.train_subset``, cut to ``data.max_train_samples`` (val is never cut)."""
    records = rs.subset(cfg.data.train_subset)
    n = cfg.data.max_train_samples
    if n is not None and n < len(records):
        log.info(
            "data.max_train_samples=%d: training on %d of %d videos (same share of every class, seed %d)",
            n,
            n,
            len(records),
            cfg.train.seed,
        )
        records = sample_records(records, n, seed=cfg.train.seed)
    return records


def build_transform(cfg: Config, spec: InputSpec, classes: list[str], *, train: bool) -> ClipTransform:
    """The uint8 spatial transform (crop, flip); normalisation is :func:`build_normalizer`'s, per batch."""
    _, size = resolved_clip(cfg, spec)
    flip = cfg.data.horizontal_flip
    if flip is None:
        flip = not flip_changes_label(classes)
    elif flip and flip_changes_label(classes) and train:
        log.warning("data.horizontal_flip=true although class names say left/right: flipping changes those labels")
    return ClipTransform(
        train=train, image_size=size, scale=cfg.data.scale, horizontal_flip=flip, resize_size=_resize_size(size)
    )


def build_normalizer(cfg: Config, spec: InputSpec) -> VideoNormalize:
    """uint8 batches → normalised float with the config's (or the model's) mean and std."""
    return VideoNormalize(cfg.data.mean or spec.mean, cfg.data.std or spec.std)


def build_reader(cfg: Config, spec: InputSpec, classes: list[str], *, train: bool = False) -> ClipReader:
    """The clip reader of a config and model: what training's eval view, predict and embed all read."""
    return ClipReader(
        build_frame_sampler(cfg, spec),
        transform=build_transform(cfg, spec, classes, train=train),
        decode_size=resolved_decode_size(cfg, spec),
    )


def build_dataset(
    cfg: Config,
    records: list[VideoRecord],
    classes: list[str],
    spec: InputSpec,
    *,
    train: bool,
    views: int = 1,
    recordset: RecordSet | None = None,
) -> VideoClipDataset:
    on_error = "raise" if cfg.data.strict else ("substitute" if train else "mark")
    return VideoClipDataset(
        records,
        frame_sampler=build_frame_sampler(cfg, spec),
        transform=build_transform(cfg, spec, classes, train=train),
        train=train,
        views=views,
        decode_size=resolved_decode_size(cfg, spec),
        side_inputs=side_inputs_for(cfg, spec, recordset),
        seed=cfg.train.seed,
        on_error=on_error,  # type: ignore[arg-type]
        cache_bytes=cfg.data.cache_decoded if not train else 0,
    )


def build_loader(
    cfg: Config,
    dataset: VideoClipDataset | CaptionClipDataset,
    *,
    train: bool,
    batch_size: int | None = None,
    workers: int | None = None,
) -> DataLoader[Any]:
    """The DataLoader of ``dataset``: ``batch_size`` (default from ``data``), ``workers`` decoding
    processes (default ``data.num_workers``), pinned memory on CUDA, the seeded epoch sampler."""
    bs = batch_size or (cfg.data.batch_size if train else (cfg.eval.batch_size or 2 * cfg.data.batch_size))
    workers = cfg.data.num_workers if workers is None else workers
    if bs < 1 or workers < 0:
        from vidrec.errors import VidrecError

        raise VidrecError(f"batch size {bs} / workers {workers}: need at least 1 clip per batch and 0 or more workers")
    pin = cfg.data.pin_memory if cfg.data.pin_memory is not None else torch.cuda.is_available()
    g = torch.Generator()
    g.manual_seed(cfg.train.seed)
    return DataLoader(
        dataset,
        batch_size=bs,
        sampler=EpochSampler(len(dataset), shuffle=train, seed=cfg.train.seed),
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
        drop_last=False,
        generator=g,
        worker_init_fn=worker_init_fn() if workers > 0 else None,  # workers end with the program, even on SIGKILL
    )
