"""What the synthetic dataset holds: its classes, its vocabulary of looks, and :class:`SynthSpec`.

Nothing here draws or writes; the other modules of :mod:`vidrec.data.synthetic` read these tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vidrec.errors import ConfigError

VERSION = 2  # bump when the rendering changes, so old folders are not mistaken for new ones
MANIFEST = "synth.json"
VIDEO_DIR = "20bn-something-something-v2"
ANNOTATION_DIR = "annotations"
LAYOUTS = ("ssv2", "something_else", "ucf101", "folder")


@dataclass(frozen=True)
class ClassDef:
    template: str  # SSv2 template with [something] placeholders
    scene: str  # scene kind (a key of vidrec.data.synthetic.scenes.SCENES)
    reverse: bool  # the class is the time-reversal of the scene


# Each consecutive pair is a temporal pair. The order is the class index order.
CLASSES: tuple[ClassDef, ...] = (
    ClassDef("Moving [something] from left to right", "move_lr", False),
    ClassDef("Moving [something] from right to left", "move_lr", True),
    ClassDef("Moving [something] up", "move_up", False),
    ClassDef("Moving [something] down", "move_up", True),
    ClassDef("Moving [something] towards the camera", "towards", False),
    ClassDef("Moving [something] away from the camera", "towards", True),
    ClassDef("Pushing [something] so that it falls off the table", "push_fall", False),
    ClassDef("Pretending to push [something]", "pretend_push", False),
    ClassDef("Putting [something] into [something]", "put_into", False),
    ClassDef("Taking [something] out of [something]", "put_into", True),
)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "green": (40, 180, 60),
    "blue": (35, 70, 220),
    "yellow": (240, 220, 30),
    "orange": (250, 135, 20),
    "purple": (140, 50, 190),
    "cyan": (30, 210, 220),
    "pink": (245, 90, 180),
}
SHAPES_A = ("circle", "square", "triangle")
SHAPES_B = ("diamond", "cross", "oval")
SHAPES = SHAPES_A + SHAPES_B
SKIN = ((224, 172, 140), (198, 134, 100), (160, 105, 72), (238, 196, 170), (120, 80, 55))
SUBSET_CODE = {"train": 0, "val": 1, "test": 2}


def template_to_class(template: str) -> str:
    """SSv2's class name: the template with the brackets removed."""
    return template.replace("[", "").replace("]", "")


def camel_name(template: str) -> str:
    """UCF101-style class name: ``MovingSomethingFromLeftToRight``."""
    words = template_to_class(template).replace("-", " ").split()
    return "".join(w[:1].upper() + w[1:] for w in words)


def snake_name(template: str) -> str:
    """Folder-style class name: ``moving_something_from_left_to_right``."""
    return "_".join(template_to_class(template).lower().replace("-", " ").split())


@dataclass(frozen=True)
class SynthSpec:
    """What to generate. Two runs with equal specs write identical datasets."""

    seed: int = 0
    videos_per_class: int = 40  # train videos per class
    val_per_class: int = 10  # validation videos per class
    test_per_class: int = 2  # unlabelled test videos per class (SSv2 test.json)
    size: int = 96  # frame height = width (even)
    num_frames: int = 28  # frames per video
    fps: float = 12.0  # Something-Else boxes assume 12 fps
    ext: str = ".webm"  # SSv2 container: .webm (VP9) or .mp4 (H.264)
    classes: tuple[str, ...] | None = None  # subset of templates (or class names); None = all
    clutter: float = 0.25  # fraction of videos with a cluttered background, a distractor and noise
    layouts: tuple[str, ...] = LAYOUTS  # which layouts to write besides the SSv2 one

    @classmethod
    def from_options(cls, **options: Any) -> SynthSpec:
        """A spec from loose options (a config's ``data.*``, the CLI's flags): numbers coerced, lists made
        tuples, an unknown name a :class:`ConfigError` that lists the known ones."""
        kinds = {f.name: f for f in fields(cls)}
        unknown = sorted(set(options) - set(kinds))
        if unknown:
            raise ConfigError(f"synthetic: unknown option(s) {', '.join(unknown)}; known: {', '.join(kinds)}")
        casts = {
            "seed": int,
            "videos_per_class": int,
            "val_per_class": int,
            "test_per_class": int,
            "size": int,
            "num_frames": int,
            "fps": float,
            "clutter": float,
            "ext": str,
        }
        d: dict[str, Any] = {}
        for name, value in options.items():
            if name in ("classes", "layouts"):
                d[name] = None if value is None else tuple(value)
            else:
                d[name] = casts[name](value)
        return cls(**d)

    def class_defs(self) -> list[tuple[int, ClassDef]]:
        """Selected classes as (index in CLASSES, ClassDef), in CLASSES order."""
        if self.classes is None:
            return list(enumerate(CLASSES))
        by_name = {}
        for i, c in enumerate(CLASSES):
            by_name[c.template.lower()] = i
            by_name[template_to_class(c.template).lower()] = i
        picked = set()
        for name in self.classes:
            key = str(name).strip().lower()
            if key not in by_name:
                known = "; ".join(c.template for c in CLASSES)
                raise ConfigError(f"synthetic classes: unknown class {name!r}. Known templates: {known}")
            picked.add(by_name[key])
        return [(i, CLASSES[i]) for i in sorted(picked)]

    def validate(self) -> None:
        if self.size < 48 or self.size % 2:
            raise ConfigError(f"synthetic size: {self.size} must be an even number >= 48")
        if self.num_frames < 12:
            raise ConfigError(f"synthetic num_frames: {self.num_frames} must be >= 12")
        if self.ext not in (".webm", ".mp4"):
            raise ConfigError(f"synthetic ext: {self.ext!r} must be '.webm' or '.mp4'")
        if min(self.videos_per_class, self.val_per_class, self.test_per_class) < 0:
            raise ConfigError("synthetic videos_per_class / val_per_class / test_per_class must be >= 0")
        if self.videos_per_class < 1:
            raise ConfigError("synthetic videos_per_class must be >= 1")
        bad = [x for x in self.layouts if x not in LAYOUTS]
        if bad:
            raise ConfigError(f"synthetic layouts: unknown {bad}; choose from {list(LAYOUTS)}")
        if not 0.0 <= self.clutter <= 1.0:
            raise ConfigError(f"synthetic clutter: {self.clutter} must be within [0, 1]")
        self.class_defs()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes) if self.classes is not None else None
        d["layouts"] = list(self.layouts)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SynthSpec:
        d = dict(d)
        if d.get("classes") is not None:
            d["classes"] = tuple(d["classes"])
        d["layouts"] = tuple(d.get("layouts", LAYOUTS))
        return cls(**d)


@dataclass
class SynthInfo:
    """What :func:`~vidrec.data.synthetic.generate` made (or found already there)."""

    root: Path
    spec: SynthSpec
    classes: list[str]  # class names (templates without brackets), in index order
    counts: dict[str, int]  # videos per subset
    created: bool  # False when an identical dataset was already there
    seconds: float
    paths: dict[str, Path] = field(default_factory=dict)

    def __str__(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        how = f"written in {self.seconds:.1f} s" if self.created else "already there, same spec"
        return f"{self.root}: {len(self.classes)} classes, {counts} videos ({how})"
