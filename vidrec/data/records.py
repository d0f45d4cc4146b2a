"""What a dataset loader returns, and the registry of loaders by name (``data.dataset``).

A loader parses a dataset's *official* annotation files into :class:`VideoRecord` objects per
subset (``train``, ``val``, ``test``) plus the ordered class names. Everything after that
(decoding, sampling, transforms) is shared.

Loader signature::

    @register_dataset("ucf101")
    def load_ucf101(root: Path, *, split: int = 1, strict: bool = False, **options) -> RecordSet
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from vidrec.errors import ConfigError


@dataclass(frozen=True)
class VideoRecord:
    """One video (a file, or a folder of extracted frames) and its label."""

    path: Path  # video file or frame folder
    label: int  # class index into RecordSet.classes; -1 when unknown (test sets)
    video_id: str  # stable id: SSv2 numeric id, UCF file stem, ...
    num_frames: int | None = None  # from a scan index when known (saves opening the file)
    fps: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)  # caption, group, template, placeholders, ...


@dataclass
class RecordSet:
    """A loader's result: records per subset, ordered classes, and every problem found."""

    subsets: dict[str, list[VideoRecord]]
    classes: list[str]
    problems: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # loader-specific facts (annotation paths, ...)
    problem_subsets: list[str | None] = field(default_factory=list)  # per problem: the subset it concerns (None: all)

    def subset(self, name: str) -> list[VideoRecord]:
        if name not in self.subsets:
            raise ConfigError(f"this dataset has no subset {name!r}; it has: {', '.join(self.subsets) or 'none'}")
        return self.subsets[name]

    def problems_for(self, name: str) -> list[str]:
        """The problems that concern subset ``name``: its own, those of a subset with the same records
        (UCF101's ``val`` is its ``test``), and those of the whole dataset. Without a loader's
        attribution every problem counts."""
        if len(self.problem_subsets) != len(self.problems):
            return list(self.problems)
        mine = self.subsets.get(name)
        same = {k for k, v in self.subsets.items() if k == name or (mine is not None and v == mine)}
        return [p for p, s in zip(self.problems, self.problem_subsets) if s is None or s in same]


DatasetLoader = Callable[..., RecordSet]
_LOADERS: dict[str, DatasetLoader] = {}
# Where each built-in loader lives, imported only when asked for: `vidrec data show` on UCF101
# must not pay for the synthetic renderer (and its torch import).
_LOADER_MODULES: dict[str, str] = {
    "synthetic": "vidrec.data.synthetic.loader",
    "ucf101": "vidrec.data.ucf101",
    "hmdb51": "vidrec.data.hmdb51",
    "ssv2": "vidrec.data.ssv2",
    "something_else": "vidrec.data.something_else",
    "folder": "vidrec.data.folder",
    "kinetics": "vidrec.data.kinetics",
    "list": "vidrec.data.mmaction_list",
    "msrvtt": "vidrec.data.msrvtt",  # captioned videos in the MSR-VTT JSON layout
}


def register_dataset(name: str) -> Callable[[DatasetLoader], DatasetLoader]:
    def deco(fn: DatasetLoader) -> DatasetLoader:
        if name in _LOADERS and _LOADERS[name] is not fn:
            raise ValueError(f"dataset {name!r} is already registered")
        _LOADERS[name] = fn
        return fn

    return deco


def _import(module: str) -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # a real missing dependency, not a loader not written yet
            raise


def list_datasets() -> list[str]:
    for module in dict.fromkeys(_LOADER_MODULES.values()):
        _import(module)
    return sorted(_LOADERS)


def check_dataset_name(name: str) -> None:
    """Raise :class:`ConfigError` for an unknown ``data.dataset``, importing no loader when the name is built in."""
    if name not in _LOADERS and name not in _LOADER_MODULES:
        get_dataset_loader(name)


def get_dataset_loader(name: str) -> DatasetLoader:
    """The loader registered as ``name``; only its own module is imported."""
    if name not in _LOADERS and name in _LOADER_MODULES:
        _import(_LOADER_MODULES[name])
    if name not in _LOADERS:
        raise ConfigError(f"data.dataset: unknown dataset {name!r}; known: {', '.join(list_datasets())}")
    return _LOADERS[name]


def load_records(name: str, root: str | Path, **options: Any) -> RecordSet:
    """Run the loader registered as ``name`` on ``root``."""
    root = Path(root).expanduser()
    if not root.exists():
        raise ConfigError(f"data.root: {root} does not exist. Point data.root at the dataset's folder.")
    return get_dataset_loader(name)(root, **options)
