"""The built-in synthetic dataset (``vidrec synth``): real video files whose classes differ only in time.

A hand-like blob (skin ellipse, fingers, arm) moves, pushes, or puts away a coloured shape.
Every class pair is built so that its two classes differ only in temporal order: the second
class of a pair is the exact time-reversal of a scene drawn from the same random distribution
(left→right vs right→left, up vs down, towards vs away from the camera, into vs out of a box),
so a model that averages frames over time sits near chance within each pair, while a temporal
model can solve it. (The push / pretend-to-push pair is not a time-reversal: its only static
cue is that a pushed object leaves the frame in its last frames.)

Layout written under ``out`` (all official formats, so the same loaders read it)::

    out/
      synth.json                                   manifest: spec, counts, version (re-run = no-op)
      20bn-something-something-v2/<id>.webm        SSv2 videos (or .mp4 with ext=".mp4")
      annotations/
        something-something-v2-labels.json         {"Moving something up": "2", ...}
        something-something-v2-train.json          [{"id", "label", "template", "placeholders"}, ...]
        something-something-v2-validation.json
        something-something-v2-test.json           [{"id"}, ...]
        bounding_box_smthsmth_part1.json           Something-Else boxes: {id: [per-frame {"name", "labels": [...]}, ...]}
        bounding_box_smthsmth_part2.json
      dataset_splits/compositional/                Something-Else compositional split
        train.json, validation.json, labels.json   (train and validation see disjoint shape groups per class)
      captions.json                                MSR-VTT style: {"videos": [...], "sentences": [...]}
      UCF-101/<Class>/v_<Class>_gNN_cMM.avi        UCF101 layout (train+val videos)
      ucfTrainTestlist/classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt
      folder/<class_name>/<id>.mp4                 plain class-folder layout (train+val videos)

Boxes are exact: they are the bounding boxes (pixel edges, ``x2``/``y2`` exclusive) of the
pixels each entity covers in the rendered frame before noise; an entity with no visible pixel
(hand off-screen, object inside the box) is left out of that frame, as in Something-Else.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from vidrec.data.records import RecordSet, register_dataset
from vidrec.errors import ConfigError, DatasetError
from vidrec.utils.io import write_json_atomic, write_text_atomic
from vidrec.video.encode import write_video

log = logging.getLogger(__name__)

VERSION = 2  # bump when the rendering changes, so old folders are not mistaken for new ones
MANIFEST = "synth.json"
VIDEO_DIR = "20bn-something-something-v2"
ANNOTATION_DIR = "annotations"
LAYOUTS = ("ssv2", "something_else", "ucf101", "folder")


@dataclass(frozen=True)
class ClassDef:
    template: str  # SSv2 template with [something] placeholders
    scene: str  # scene generator name
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
    def from_json(cls, d: dict[str, Any]) -> "SynthSpec":
        d = dict(d)
        if d.get("classes") is not None:
            d["classes"] = tuple(d["classes"])
        d["layouts"] = tuple(d.get("layouts", LAYOUTS))
        return cls(**d)


@dataclass
class SynthInfo:
    """What :func:`generate` made (or found already there)."""

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


# --------------------------------------------------------------------------------------------
# Scenes: per-frame state of hand, object and container, as plain arrays.
# --------------------------------------------------------------------------------------------


@dataclass
class Scene:
    """Per-frame state; ``t`` indexes frames. Reversing a scene reverses every per-frame array."""

    obj_xy: np.ndarray  # (T, 2) object centre
    obj_r: np.ndarray  # (T,) object radius
    hand_xy: np.ndarray  # (T, 2) palm centre
    hand_s: np.ndarray  # (T,) hand scale
    hand_open: np.ndarray  # (T,) finger spread, 1 open .. 0 closed
    hand_dir: tuple[int, int]  # unit vector from the palm towards the fingers (arm goes the other way)
    container: tuple[float, float, float, float] | None = None  # (cx, top, width, height) of the box front
    table: tuple[float, float, float] = (0.0, 0.0, 0.0)  # (x0, x1, top) of the table top region
    shoulder: tuple[float, float] = (0.0, 0.0)  # off-screen point the arm pivots on

    def reversed(self) -> "Scene":
        return replace(
            self,
            obj_xy=self.obj_xy[::-1].copy(),
            obj_r=self.obj_r[::-1].copy(),
            hand_xy=self.hand_xy[::-1].copy(),
            hand_s=self.hand_s[::-1].copy(),
            hand_open=self.hand_open[::-1].copy(),
        )


def _ease(u: np.ndarray, smooth: bool) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u) if smooth else u


def _piecewise(t: np.ndarray, knots: Sequence[float], values: Sequence[np.ndarray | float], smooth: Sequence[bool]) -> np.ndarray:
    """Interpolate ``values`` (one per knot) over frame times ``t`` with per-segment easing."""
    vals = [np.asarray(v, dtype=np.float64) for v in values]
    out = np.empty((len(t),) + vals[0].shape)
    for i, ti in enumerate(t):
        if ti <= knots[0]:
            out[i] = vals[0]
            continue
        if ti >= knots[-1]:
            out[i] = vals[-1]
            continue
        k = int(np.searchsorted(knots, ti, side="right")) - 1
        span = max(knots[k + 1] - knots[k], 1e-9)
        w = float(_ease(np.asarray((ti - knots[k]) / span), smooth[k]))
        out[i] = vals[k] + (vals[k + 1] - vals[k]) * w
    return out


def _phases(rng: np.random.Generator, n: int) -> tuple[float, float, float, float]:
    """Symmetric timing: approach and retreat durations come from the same distribution."""
    a, r = rng.uniform(0.12, 0.22, size=2)
    h1, h2 = rng.uniform(0.0, 0.05, size=2)
    t1 = a
    t2 = t1 + h1
    t4 = 1.0 - r
    t3 = t4 - h2
    return t1 * (n - 1), t2 * (n - 1), t3 * (n - 1), t4 * (n - 1)


def _hand_geometry(s: float) -> tuple[float, float, float]:
    """(palm half-length along the fingers, palm half-width, finger length) at hand scale ``s``."""
    return 5.5 * s, 6.5 * s, 5.0 * s


def _contact(obj: np.ndarray, r: float, s: float, u: tuple[int, int]) -> np.ndarray:
    """Palm centre that grips an object of radius ``r`` at ``obj`` with fingers pointing along ``u``."""
    pl, _, _ = _hand_geometry(s)
    return obj - np.asarray(u, dtype=np.float64) * (r + pl * 0.7)


def _offscreen(p: np.ndarray, u: tuple[int, int], size: int, s: float) -> np.ndarray:
    """Where the palm starts/ends: beyond the border the arm comes from."""
    pl, _, fl = _hand_geometry(s)
    q = p.copy()
    margin = pl * 2 + fl + 4
    if u == (0, -1):  # arm from the bottom
        q[1] = size + margin
    elif u == (0, 1):  # arm from the top
        q[1] = -margin
    elif u == (1, 0):  # arm from the left
        q[0] = -margin
    else:  # arm from the right
        q[0] = size + margin
    return q


def _jitter(rng: np.random.Generator, n: int, amount: float) -> np.ndarray:
    """Small smooth random walk (n, 2), zero-mean, for hand tremor."""
    steps = rng.normal(0, amount, size=(n, 2))
    walk = np.cumsum(steps, axis=0)
    walk -= np.linspace(walk[0], walk[-1], n)  # pin both ends: symmetric under reversal
    return walk


def _table(rng: np.random.Generator, size: int) -> tuple[float, float, float]:
    top = rng.uniform(0.3, 0.45) * size
    if rng.random() < 0.5:
        return 0.0, float(size), top
    if rng.random() < 0.5:
        return 0.0, rng.uniform(0.6, 0.9) * size, top
    return rng.uniform(0.1, 0.4) * size, float(size), top


def _shoulder(rng: np.random.Generator, u: tuple[int, int], size: int) -> tuple[float, float]:
    """The arm's pivot, beyond the border the arm comes from (opposite to ``u``)."""
    along = rng.uniform(0.44, 0.56) * size
    out = rng.uniform(0.04, 0.12) * size  # close to the frame: the arm's angle changes a lot with the hand's position
    if u == (0, -1):
        return along, size + out
    if u == (0, 1):
        return along, -out
    if u == (1, 0):
        return -out, rng.uniform(0.6, 0.85) * size
    return size + out, rng.uniform(0.6, 0.85) * size


def make_scene(kind: str, rng: np.random.Generator, n: int, size: int) -> Scene:
    """Sample one scene of ``kind`` with ``n`` frames on a ``size``×``size`` canvas."""
    S = size / 96.0
    t = np.arange(n, dtype=np.float64)
    r0 = rng.uniform(8.0, 11.0) * S
    s0 = rng.uniform(1.1, 1.35) * S
    t1, t2, t3, t4 = _phases(rng, n)
    smooth = [bool(b) for b in rng.random(6) < 0.6]
    ones = np.ones(n)
    table = _table(rng, size)
    container = None

    if kind in ("move_lr", "move_up", "towards"):
        if kind == "move_lr":
            y = rng.uniform(0.48, 0.72) * size
            p0 = np.array([rng.uniform(0.12, 0.3) * size, y + rng.uniform(-3, 3) * S])
            p1 = np.array([rng.uniform(0.7, 0.88) * size, y + rng.uniform(-3, 3) * S])
            radius = r0 * ones
            u = (0, -1) if rng.random() < 0.7 else (0, 1)
        elif kind == "move_up":
            x = rng.uniform(0.3, 0.7) * size
            p0 = np.array([x + rng.uniform(-3, 3) * S, rng.uniform(0.66, 0.8) * size])
            p1 = np.array([x + rng.uniform(-3, 3) * S, rng.uniform(0.2, 0.36) * size])
            radius = r0 * ones
            u = (0, -1)
        else:
            x = rng.uniform(0.35, 0.65) * size
            y = rng.uniform(0.42, 0.55) * size
            p0 = np.array([x, y])
            p1 = np.array([x + rng.uniform(-4, 4) * S, y + rng.uniform(0.06, 0.1) * size])
            ra = 0.8 * r0
            rb = min(ra * rng.uniform(2.1, 2.6), 0.26 * size)
            radius = _piecewise(t, [t2, t3], [ra, rb], [smooth[0]])
            u = (0, -1)
        obj = _piecewise(t, [t2, t3], [p0, p1], [smooth[1]])
        hand_s = s0 * radius / radius[0] if kind == "towards" else s0 * ones
        grip = np.stack([_contact(obj[i], radius[i], hand_s[i], u) for i in range(n)])
        start = _offscreen(grip[0], u, size, hand_s[0])
        end = _offscreen(grip[-1], u, size, hand_s[-1])
        hand = grip.copy()
        before, after = t < t1, t > t4
        hand[before] = _piecewise(t[before], [0, t1], [start, grip[0]], [smooth[2]])
        hand[after] = _piecewise(t[after], [t4, n - 1], [grip[-1], end], [smooth[3]])
        hand_open = _piecewise(t, [t1 - 1, t2, t3, t4 + 1], [1.0, 0.25, 0.25, 1.0], [True, False, True])
        hand = hand + _jitter(rng, n, 0.35 * S)

    elif kind in ("push_fall", "pretend_push"):
        d = 1 if rng.random() < 0.5 else -1
        u = (d, 0)
        edge_off = rng.uniform(0.22, 0.4) * size  # distance from the object to the table edge
        ox = rng.uniform(0.3, 0.45) * size if d == 1 else size - rng.uniform(0.3, 0.45) * size
        oy = rng.uniform(0.55, 0.72) * size
        x_edge = ox + d * edge_off
        table = (0.0, x_edge, table[2]) if d == 1 else (x_edge, float(size), table[2])
        radius = r0 * ones
        o0 = np.array([ox, oy])
        grip0 = _contact(o0, r0, s0, u)
        start = _offscreen(grip0, u, size, s0)
        if kind == "push_fall":
            t_fall = rng.uniform(0.14, 0.2) * (n - 1)  # frames from the edge to out of sight
            t_push_end = min(t3, n - 2 - t_fall)
            o1 = np.array([x_edge + d * r0 * 0.6, oy])
            obj = _piecewise(t, [t2, t_push_end], [o0, o1], [smooth[1]])
            v = (o1[0] - o0[0]) / max(t_push_end - t2, 1.0)  # speed when leaving the edge
            g = 2 * (size + 2.5 * r0 - oy) / t_fall**2  # falls below the bottom border in t_fall frames
            fall = t > t_push_end
            dt = t[fall] - t_push_end
            obj[fall, 0] = o1[0] + v * 0.6 * dt
            obj[fall, 1] = oy + 0.5 * g * dt**2
            grip = np.stack([_contact(obj[i], r0, s0, u) for i in range(n)])
            hand = grip.copy()
            hand[fall] = grip[np.flatnonzero(~fall)[-1]]
            end = _offscreen(hand[-1], u, size, s0)
            before, after = t < t1, t > t4
            hand[before] = _piecewise(t[before], [0, t1], [start, grip[0]], [smooth[2]])
            hand[after] = _piecewise(t[after], [t4, n - 1], [hand[np.flatnonzero(~after)[-1]], end], [smooth[3]])
            hand_open = _piecewise(t, [t1 - 1, t2, t3, t4 + 1], [1.0, 0.6, 0.6, 1.0], [True, False, True])
        else:
            obj = np.tile(o0, (n, 1))
            gap = rng.uniform(1.0, 4.0) * S
            near = grip0 - np.asarray(u) * gap
            wobble = near - np.asarray(u) * rng.uniform(2.0, 5.0) * S  # a feint: forward, back, forward
            mid = (t2 + t3) / 2
            hand = _piecewise(
                t, [0, t1, t2 + (mid - t2) * 0.5, mid, t3, t4, n - 1],
                [start, near, wobble, near, near, near, start], [smooth[2], True, True, True, False, smooth[3]],
            )
            hand_open = _piecewise(t, [t1 - 1, t2, t3, t4 + 1], [1.0, 0.6, 0.6, 1.0], [True, False, True])
        hand_s = s0 * ones
        hand = hand + _jitter(rng, n, 0.35 * S)

    elif kind == "put_into":
        u = (0, 1)  # the hand comes from the top and grips the object from above
        side = 1 if rng.random() < 0.5 else -1
        cw = rng.uniform(0.3, 0.38) * size
        ch = max(rng.uniform(0.2, 0.26) * size, 2 * r0 + 4 * S)
        bottom = rng.uniform(0.8, 0.9) * size
        cx = rng.uniform(0.28, 0.36) * size if side == 1 else size - rng.uniform(0.28, 0.36) * size
        top = bottom - ch
        container = (cx, top, cw, ch)
        ox = cx + side * rng.uniform(0.36, 0.46) * size
        oy = bottom - r0 - rng.uniform(0, 3) * S
        above = top - r0 - rng.uniform(4, 9) * S
        inside = top + r0 + rng.uniform(2, 3.5) * S
        o0, o1, o2, o3 = (np.array([ox, oy]), np.array([ox, above]), np.array([cx, above]), np.array([cx, inside]))
        f = rng.uniform(0.25, 0.35)
        k1 = t2 + (t3 - t2) * f
        k2 = t3 - (t3 - t2) * f
        obj = _piecewise(t, [t2, k1, k2, t3], [o0, o1, o2, o3], [smooth[1], True, smooth[4]])
        radius = r0 * ones
        hand_s = s0 * ones
        grip = np.stack([_contact(obj[i], r0, s0, u) for i in range(n)])
        start = _offscreen(grip[0], u, size, s0)
        end = _offscreen(grip[-1], u, size, s0)
        hand = grip.copy()
        before, after = t < t1, t > t4
        hand[before] = _piecewise(t[before], [0, t1], [start, grip[0]], [smooth[2]])
        hand[after] = _piecewise(t[after], [t4, n - 1], [grip[-1], end], [smooth[3]])
        hand_open = _piecewise(t, [t1 - 1, t2, t3, t4 + 1], [1.0, 0.25, 0.25, 1.0], [True, False, True])
        hand = hand + _jitter(rng, n, 0.35 * S)
    else:
        raise ValueError(f"unknown scene kind {kind!r}")

    return Scene(
        shoulder=_shoulder(rng, u, size),
        obj_xy=obj, obj_r=np.asarray(radius, dtype=np.float64), hand_xy=hand, hand_s=np.asarray(hand_s, dtype=np.float64),
        hand_open=np.clip(hand_open, 0, 1), hand_dir=u, container=container, table=table,
    )


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

HAND, OBJ, CONTAINER = 1, 2, 3  # ids in the owner map


def shape_mask(shape: str, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r
    if shape == "triangle":
        return (dy <= 0.75 * r) & (np.abs(dx) <= (dy + r) / 1.75)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.1 * r
    if shape == "cross":
        a, b = np.abs(dx), np.abs(dy)
        return ((a <= 0.38 * r) & (b <= r)) | ((b <= 0.38 * r) & (a <= r))
    if shape == "oval":
        return (dx / (1.15 * r)) ** 2 + (dy / (0.65 * r)) ** 2 <= 1.0
    raise ValueError(f"unknown shape {shape!r}")


def _ellipse(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return ((xx - cx) / max(ax, 1e-3)) ** 2 + ((yy - cy) / max(ay, 1e-3)) ** 2 <= 1.0


def _hand_masks(
    xx: np.ndarray, yy: np.ndarray, p: np.ndarray, s: float, spread: float, u: tuple[int, int], shoulder: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(skin mask, sleeve mask) of a hand whose palm is at ``p``, fingers along ``u``, arm to ``shoulder``."""
    pl, pw, fl = _hand_geometry(s)
    ux, uy = u
    vx, vy = -uy, ux  # across the hand
    cx, cy = float(p[0]), float(p[1])

    def ell(ccx: float, ccy: float, along: float, across: float) -> np.ndarray:
        ax = abs(ux) * along + abs(vx) * across
        ay = abs(uy) * along + abs(vy) * across
        return _ellipse(xx, yy, ccx, ccy, ax, ay)

    skin = ell(cx, cy, pl, pw)
    flen = fl * (0.65 + 0.35 * spread)
    fw = 1.5 * s
    for k in (-1.5, -0.5, 0.5, 1.5):
        off = k * fw * 2.0 * (1.0 + 0.35 * spread)
        fx = cx + ux * (pl * 0.75 + flen * 0.5) + vx * off
        fy = cy + uy * (pl * 0.75 + flen * 0.5) + vy * off
        skin |= ell(fx, fy, flen * 0.55, fw)
    # thumb, to one side, pointing forward
    tx = cx + vx * pw * (0.95 + 0.2 * spread) + ux * pl * 0.2
    ty = cy + vy * pw * (0.95 + 0.2 * spread) + uy * pl * 0.2
    skin |= ell(tx, ty, fl * 0.45, fw * 1.2)
    # forearm: a thick segment from the palm to the shoulder (off-screen), so its angle shows where
    # the hand is; skin near the wrist, sleeve further back
    half = pw * 0.7
    wrist = pl * 2.2
    sx, sy = shoulder
    ax_, ay_ = sx - cx, sy - cy
    length = max(float(np.hypot(ax_, ay_)), 1e-3)
    ax_, ay_ = ax_ / length, ay_ / length
    along = (xx - cx) * ax_ + (yy - cy) * ay_  # distance from the palm towards the shoulder
    across = np.abs((xx - cx) * -ay_ + (yy - cy) * ax_)
    arm = (along >= 0) & (along <= length) & (across <= half)
    skin |= arm & (along <= wrist)
    sleeve = arm & (along > wrist) & ~skin
    return skin, sleeve


def _noise_field(rng: np.random.Generator, size: int, cells: int, amp: float) -> np.ndarray:
    """Smooth random texture (size, size) with values in [-amp, amp]."""
    g = rng.uniform(-amp, amp, size=(cells + 1, cells + 1))
    x = np.linspace(0, cells, size)
    i = np.minimum(x.astype(int), cells - 1)
    f = x - i
    rows = g[i] * (1 - f)[:, None] + g[i + 1] * f[:, None]  # (size, cells+1)
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


@dataclass
class Look:
    """Everything about appearance (not motion) of one video."""

    colour: str
    shape: str
    skin: tuple[int, int, int]
    sleeve: tuple[int, int, int]
    cluttered: bool
    noise: float
    container_colour: str | None
    distractor: tuple[str, str, float, float, float] | None  # (colour, shape, x, y, r)
    wall: tuple[int, int, int]
    table_rgb: tuple[int, int, int]
    floor_rgb: tuple[int, int, int]
    rgb: tuple[int, int, int] = (0, 0, 0)  # the object's exact colour


def _jit_colour(rng: np.random.Generator, rgb: Sequence[int], amount: float) -> np.ndarray:
    return np.clip(np.asarray(rgb, dtype=np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _background(rng: np.random.Generator, scene: Scene, look: Look, size: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    img = np.empty((size, size, 3), dtype=np.float32)
    img[:] = look.wall
    x0, x1, top = scene.table
    floor = yy >= top
    img[floor] = look.floor_rgb
    img[floor & (xx >= x0) & (xx < x1)] = look.table_rgb
    if look.cluttered:
        img += _noise_field(rng, size, int(rng.integers(4, 10)), 12.0)[..., None]
        for _ in range(int(rng.integers(5, 12))):
            c = rng.uniform(40, 220, 3).astype(np.float32)
            alpha = rng.uniform(0.2, 0.4)
            cx, cy = rng.uniform(0, size, 2)
            ax, ay = rng.uniform(3, 14, 2) * size / 96
            m = _ellipse(xx, yy, cx, cy, ax, ay) if rng.random() < 0.5 else (np.abs(xx - cx) <= ax) & (np.abs(yy - cy) <= ay)
            img[m] = img[m] * (1 - alpha) + c * alpha
        if look.distractor is not None:
            dcol, dshape, dx, dy, dr = look.distractor
            img[shape_mask(dshape, xx, yy, dx, dy, dr)] = _jit_colour(rng, COLOURS[dcol], 15)
    return img


def render_scene(scene: Scene, look: Look, rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[dict[int, tuple[float, float, float, float]]]]:
    """Draw ``scene``; return uint8 frames (T, H, W, 3) and per-frame boxes {entity id: (x1, y1, x2, y2)}."""
    n = len(scene.obj_xy)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    bg = _background(rng, scene, look, size, xx, yy)
    obj_rgb = np.asarray(look.rgb, dtype=np.float32)
    skin_rgb = _jit_colour(rng, look.skin, 10)
    sleeve_rgb = _jit_colour(rng, look.sleeve, 10)
    cont = None
    if scene.container is not None and look.container_colour is not None:
        cx, top, cw, ch = scene.container
        front = (np.abs(xx - cx) <= cw / 2) & (yy >= top) & (yy <= top + ch)
        rim = _ellipse(xx, yy, cx, top, cw / 2, 3.5 * size / 96)
        crgb = _jit_colour(rng, COLOURS[look.container_colour], 10)
        cont = (front, rim & ~front, crgb)
    frames = np.empty((n, size, size, 3), dtype=np.uint8)
    boxes: list[dict[int, tuple[float, float, float, float]]] = []
    noise_rng = np.random.default_rng(rng.integers(2**63))
    for i in range(n):
        img = bg.copy()
        owner = np.zeros((size, size), dtype=np.uint8)
        if cont is not None:
            front, opening, crgb = cont
            img[opening] = crgb * 0.45  # the dark inside, seen through the opening
            owner[opening] = CONTAINER
        om = shape_mask(look.shape, xx, yy, float(scene.obj_xy[i, 0]), float(scene.obj_xy[i, 1]), float(scene.obj_r[i]))
        img[om] = obj_rgb
        owner[om] = OBJ
        if cont is not None:
            img[front] = crgb
            owner[front] = CONTAINER
        skin, sleeve = _hand_masks(xx, yy, scene.hand_xy[i], float(scene.hand_s[i]), float(scene.hand_open[i]), scene.hand_dir, scene.shoulder)
        img[sleeve] = sleeve_rgb
        img[skin] = skin_rgb
        owner[skin | sleeve] = HAND
        if look.noise > 0:
            img += noise_rng.standard_normal(img.shape, dtype=np.float32) * np.float32(look.noise)
        frames[i] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        fb: dict[int, tuple[float, float, float, float]] = {}
        for ent in (HAND, OBJ, CONTAINER):
            m = owner == ent
            rows = np.flatnonzero(m.any(1))
            if rows.size:
                cols = np.flatnonzero(m.any(0))
                fb[ent] = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
        boxes.append(fb)
    return frames, boxes


# --------------------------------------------------------------------------------------------
# One video: scene + look + caption, deterministic from (seed, class, subset, k)
# --------------------------------------------------------------------------------------------

_CAPTIONS: dict[str, tuple[str, ...]] = {
    "move_lr": ("a hand moves a {obj} from left to right", "someone slides the {obj} to the right",
                "a hand carries a {obj} across the table from left to right", "the {obj} is moved rightwards by a hand"),
    "move_lr~": ("a hand moves a {obj} from right to left", "someone slides the {obj} to the left",
                 "a hand carries a {obj} across the table from right to left", "the {obj} is moved leftwards by a hand"),
    "move_up": ("a hand lifts a {obj} up", "someone raises the {obj}", "a hand moves a {obj} upwards"),
    "move_up~": ("a hand moves a {obj} down", "someone lowers the {obj}", "a hand brings a {obj} downwards"),
    "towards": ("a hand brings a {obj} towards the camera", "someone moves the {obj} closer to the camera",
                "a {obj} grows larger as a hand moves it towards the camera"),
    "towards~": ("a hand moves a {obj} away from the camera", "someone takes the {obj} away from the camera",
                 "a {obj} gets smaller as a hand moves it away from the camera"),
    "push_fall": ("a hand pushes a {obj} off the edge of the table", "someone pushes the {obj} until it falls off the table",
                  "a {obj} is pushed off the table by a hand"),
    "pretend_push": ("a hand pretends to push a {obj}", "someone reaches for the {obj} but does not push it",
                     "a hand approaches a {obj} and pulls back without moving it"),
    "put_into": ("a hand puts a {obj} into a {cont}", "someone places the {obj} inside the {cont}",
                 "a hand drops a {obj} into a {cont}"),
    "put_into~": ("a hand takes a {obj} out of a {cont}", "someone removes the {obj} from the {cont}",
                  "a hand lifts a {obj} out of a {cont}"),
}


@dataclass
class VideoPlan:
    video_id: str
    subset: str  # train / val / test
    class_pos: int  # index into the selected classes (= label)
    class_full: int  # index into CLASSES (seeds the randomness, so subsets of classes agree)
    k: int  # index within (subset, class)


def sample_look(rng: np.random.Generator, scene: Scene, size: int, clutter: float) -> Look:
    """Draw the appearance of one video: colours, shape, clutter, distractor, noise."""
    colour = str(rng.choice(list(COLOURS)))
    shape = str(rng.choice(SHAPES))
    others = [c for c in COLOURS if c != colour]
    cluttered = bool(rng.random() < clutter)
    distractor = None
    if cluttered and rng.random() < 0.8:
        dcol, dshape = str(rng.choice(others)), str(rng.choice([s for s in SHAPES if s != shape]))
        distractor = (dcol, dshape, float(rng.uniform(0.08, 0.92) * size), float(rng.uniform(0.1, 0.9) * size), float(rng.uniform(4, 7) * size / 96))
    wall = tuple(int(v) for v in rng.uniform(90, 200, 3))
    table_rgb = tuple(int(v) for v in (np.asarray(wall) * rng.uniform(0.55, 0.85) + rng.uniform(-20, 20, 3)).clip(30, 230))
    floor_rgb = tuple(int(v) for v in (np.asarray(table_rgb) * 0.55).clip(15, 200))
    return Look(
        colour=colour, shape=shape, skin=SKIN[int(rng.integers(len(SKIN)))],
        sleeve=tuple(int(v) for v in rng.uniform(20, 230, 3)),  # type: ignore[arg-type]
        cluttered=cluttered, noise=float(rng.uniform(1.5, 5) if cluttered else rng.uniform(0, 2)),
        container_colour=str(rng.choice(others)) if scene.container is not None else None,
        distractor=distractor, wall=wall, table_rgb=table_rgb, floor_rgb=floor_rgb,  # type: ignore[arg-type]
        rgb=tuple(int(v) for v in _jit_colour(rng, COLOURS[colour], 20)),  # type: ignore[arg-type]
    )


def render_video(spec: SynthSpec, class_full: int, subset: str, k: int) -> tuple[np.ndarray, list[dict[int, tuple[float, float, float, float]]], dict[str, Any]]:
    """Render one video: uint8 frames (T, H, W, 3), per-frame boxes, and facts (caption, placeholders, ...)."""
    cdef = CLASSES[class_full]
    # One stream per (seed, class, subset, k): independent of worker scheduling and of which other
    # classes are selected. Both classes of a pair draw their scene from the same distribution.
    rng = np.random.default_rng([spec.seed, class_full, SUBSET_CODE[subset], k, VERSION])
    size, n = spec.size, spec.num_frames
    scene = make_scene(cdef.scene, rng, n, size)
    if cdef.reverse:
        scene = scene.reversed()
    look = sample_look(rng, scene, size, spec.clutter)
    frames, boxes = render_scene(scene, look, rng, size)

    colour, shape, cluttered, distractor = look.colour, look.shape, look.cluttered, look.distractor
    obj_name = f"{colour} {shape}"
    placeholders = [obj_name]
    cont_name = None
    if look.container_colour is not None:
        cont_name = f"{look.container_colour} box"
        placeholders.append(cont_name)
    key = cdef.scene + ("~" if cdef.reverse else "")
    size_word = "small " if scene.obj_r[0] < 9.0 * size / 96 and rng.random() < 0.5 else ""
    caption = str(rng.choice(_CAPTIONS[key])).format(obj=size_word + obj_name, cont=cont_name)
    if cluttered:
        extras = ["over a cluttered table", "on a messy table"]
        if distractor is not None:
            extras.append(f"next to a {distractor[0]} {distractor[1]}")
    else:
        extras = ["", "on a plain table", "in front of a plain wall"]
    extra = str(rng.choice(extras))
    caption = f"{caption} {extra}".strip()
    facts = {
        "caption": caption,
        "placeholders": placeholders,
        "colour": colour,
        "shape": shape,
        "shape_group": "A" if shape in SHAPES_A else "B",
        "cluttered": cluttered,
        "rgb": [int(v) for v in look.rgb],
    }
    return frames, boxes, facts


def _fill(template: str, placeholders: Sequence[str]) -> str:
    """SSv2's ``label`` field: the template with its placeholders filled in, lower-cased first letter."""
    out = template
    for p in placeholders:
        out = out.replace("[something]", p, 1)
    return out[:1].lower() + out[1:]


def _boxes_json(video_id: str, boxes: list[dict[int, tuple[float, float, float, float]]], placeholders: list[str]) -> list[dict[str, Any]]:
    frames = []
    for i, fb in enumerate(boxes):
        labels = []
        for ent, std, gt in ((OBJ, "0000", "object 0"), (CONTAINER, "0001", "object 1")):
            if ent in fb and (ent == OBJ or len(placeholders) > 1):
                x1, y1, x2, y2 = fb[ent]
                cat = placeholders[0] if ent == OBJ else placeholders[1]
                labels.append({"box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}, "category": cat, "standard_category": std, "gt_annotation": gt})
        if HAND in fb:
            x1, y1, x2, y2 = fb[HAND]
            labels.append({"box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}, "category": "hand", "standard_category": "hand", "gt_annotation": "object hand"})
        frames.append({"name": f"{video_id}/{i + 1:04d}.jpg", "gt_placeholders": list(placeholders), "nr_instances": len(labels), "labels": labels})
    return frames


def _ucf_group(subset: str, k: int) -> tuple[int, int]:
    """(group, clip) in UCF101 numbering: validation videos fill groups 1-7 (split 1's test groups),
    training videos groups 8-25; a group never holds both."""
    if subset == "val":
        return 1 + k % 7, 1 + k // 7
    return 8 + k % 18, 1 + k // 18


def _work(args: tuple[SynthSpec, VideoPlan, str]) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """Worker: render one video and encode it into every requested layout."""
    spec, plan, root_s = args
    root = Path(root_s)
    frames, boxes, facts = render_video(spec, plan.class_full, plan.subset, plan.k)
    write_video(root / VIDEO_DIR / f"{plan.video_id}{spec.ext}", frames, fps=spec.fps)
    template = CLASSES[plan.class_full].template
    if plan.subset != "test":
        if "ucf101" in spec.layouts:
            cname = camel_name(template)
            g, c = _ucf_group(plan.subset, plan.k)
            write_video(root / "UCF-101" / cname / f"v_{cname}_g{g:02d}_c{c:02d}.avi", frames, fps=spec.fps)
        if "folder" in spec.layouts:
            write_video(root / "folder" / snake_name(template) / f"{plan.video_id}.mp4", frames, fps=spec.fps)
    box_json = _boxes_json(plan.video_id, boxes, facts["placeholders"]) if "something_else" in spec.layouts else []
    return plan.video_id, box_json, facts


# --------------------------------------------------------------------------------------------
# generate()
# --------------------------------------------------------------------------------------------


def _plans(spec: SynthSpec) -> list[VideoPlan]:
    chosen = spec.class_defs()
    items: list[tuple[str, int, int, int]] = []
    for subset, per in (("train", spec.videos_per_class), ("val", spec.val_per_class), ("test", spec.test_per_class)):
        for pos, (full, _) in enumerate(chosen):
            for k in range(per):
                items.append((subset, pos, full, k))
    ids = np.random.default_rng([spec.seed, 7919]).permutation(len(items)) + 1  # SSv2-like numeric ids
    return [VideoPlan(str(int(vid)), s, pos, full, k) for vid, (s, pos, full, k) in zip(ids, items)]


def _check_target(out: Path, spec: SynthSpec) -> bool:
    """True when an identical, complete dataset is already at ``out``. Refuse to touch anything else."""
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{manifest}: unreadable manifest ({exc}). Delete {out} or pick another folder.") from exc
        old_spec = old.get("spec", {})
        new_spec = spec.to_json()
        if old.get("version") != VERSION or old_spec != new_spec:
            diff = sorted(k for k in set(old_spec) | set(new_spec) if old_spec.get(k) != new_spec.get(k))
            if old.get("version") != VERSION:
                diff.append(f"version {old.get('version')} -> {VERSION}")
            raise DatasetError(
                f"{out} already holds a synthetic dataset made with a different spec (differs in: {', '.join(diff)}). "
                "vidrec never overwrites data: pass the same options, pick another folder, or delete this one."
            )
        return bool(old.get("complete"))
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file, so the dataset cannot be written there; pick a new or empty folder.")
    if out.exists() and any(out.iterdir()):
        raise DatasetError(
            f"{out} is not empty and holds no {MANIFEST}, so it is not a vidrec synthetic dataset. "
            "vidrec never overwrites data: pick an empty or new folder."
        )
    return False


def _manifest(spec: SynthSpec, counts: dict[str, int], classes: list[str], box_parts: dict[str, list[str]], complete: bool) -> dict[str, Any]:
    return {
        "generator": "vidrec synth",
        "version": VERSION,
        "complete": complete,
        "spec": spec.to_json(),
        "classes": classes,
        "counts": counts,
        "layout": {"videos": VIDEO_DIR, "annotations": ANNOTATION_DIR},
        "box_parts": box_parts,
    }


def generate(
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    videos_per_class: int = 40,
    val_per_class: int = 10,
    test_per_class: int = 2,
    size: int = 96,
    num_frames: int = 28,
    fps: float = 12.0,
    ext: str = ".webm",
    classes: Sequence[str] | None = None,
    clutter: float = 0.25,
    layouts: Sequence[str] = LAYOUTS,
    workers: int = 2,
    progress: bool = True,
) -> SynthInfo:
    """Write the synthetic dataset to ``out`` (see the module docstring for the layout).

    Re-running with the same options into the same folder does nothing; different options into a
    non-empty folder are refused (:class:`DatasetError`), never overwritten.
    """
    out = Path(out).expanduser()
    spec = SynthSpec(
        seed=int(seed), videos_per_class=int(videos_per_class), val_per_class=int(val_per_class),
        test_per_class=int(test_per_class), size=int(size), num_frames=int(num_frames), fps=float(fps), ext=ext,
        classes=tuple(classes) if classes is not None else None, clutter=float(clutter), layouts=tuple(layouts),
    )
    spec.validate()
    t0 = time.perf_counter()
    chosen = spec.class_defs()
    names = [template_to_class(c.template) for _, c in chosen]
    plans = _plans(spec)
    counts = {s: sum(p.subset == s for p in plans) for s in ("train", "val", "test")}
    paths = {
        "videos": out / VIDEO_DIR,
        "annotations": out / ANNOTATION_DIR,
        "labels": out / ANNOTATION_DIR / "something-something-v2-labels.json",
        "captions": out / "captions.json",
    }
    if _check_target(out, spec):
        log.info("%s: synthetic dataset already there (same spec); nothing to do", out)
        return SynthInfo(out, spec, names, counts, False, time.perf_counter() - t0, paths)

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / MANIFEST, _manifest(spec, counts, names, {}, complete=False))
    tasks = [(spec, p, str(out)) for p in plans]
    results: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="vidrec synth", unit="video")
    try:
        if workers > 1 and len(tasks) > 1:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ctx.Pool(processes=workers) as pool:
                for vid, box_json, facts in pool.imap_unordered(_work, tasks, chunksize=4):
                    results[vid] = (box_json, facts)
                    if bar is not None:
                        bar.update(1)
        else:
            for task in tasks:
                vid, box_json, facts = _work(task)
                results[vid] = (box_json, facts)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    ann = out / ANNOTATION_DIR
    ann.mkdir(parents=True, exist_ok=True)
    write_json_atomic(paths["labels"], {n: str(i) for i, n in enumerate(names)})
    lists: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for p in plans:
        template = CLASSES[p.class_full].template
        ph = results[p.video_id][1]["placeholders"]
        if p.subset == "test":
            lists["test"].append({"id": p.video_id})
        else:
            lists[p.subset].append({"id": p.video_id, "label": _fill(template, ph), "template": template, "placeholders": ph})
    write_json_atomic(ann / "something-something-v2-train.json", lists["train"], indent=None)
    write_json_atomic(ann / "something-something-v2-validation.json", lists["val"], indent=None)
    write_json_atomic(ann / "something-something-v2-test.json", lists["test"], indent=None)

    box_parts: dict[str, list[str]] = {}
    if "something_else" in spec.layouts:
        ordered = [p.video_id for p in plans]
        half = (len(ordered) + 1) // 2
        for part, ids in ((1, ordered[:half]), (2, ordered[half:])):
            name = f"bounding_box_smthsmth_part{part}.json"
            write_json_atomic(ann / name, {vid: results[vid][0] for vid in ids}, indent=None)
            box_parts[name] = ids
        # Compositional split: per temporal pair, train sees one shape group, validation the other.
        comp = out / "dataset_splits" / "compositional"
        ctrain, cval = [], []
        for p in plans:
            if p.subset == "test":
                continue
            facts = results[p.video_id][1]
            entry = next(e for e in lists[p.subset] if e["id"] == p.video_id)
            train_group = "A" if (p.class_full // 2) % 2 == 0 else "B"
            (ctrain if facts["shape_group"] == train_group else cval).append(entry)
        write_json_atomic(comp / "train.json", ctrain, indent=None)
        write_json_atomic(comp / "validation.json", cval, indent=None)
        write_json_atomic(comp / "labels.json", {n: i for i, n in enumerate(names)})
        paths["boxes"] = ann / "bounding_box_smthsmth_part1.json"
        paths["compositional"] = comp

    split_name = {"train": "train", "val": "validate", "test": "test"}
    write_json_atomic(
        paths["captions"],
        {
            "info": {"description": "vidrec synthetic dataset captions (MSR-VTT style)", "version": VERSION},
            "videos": [{"video_id": p.video_id, "id": i, "split": split_name[p.subset], "category": p.class_pos}
                       for i, p in enumerate(plans)],
            "sentences": [{"video_id": p.video_id, "sen_id": i, "caption": results[p.video_id][1]["caption"]}
                          for i, p in enumerate(plans)],
        },
        indent=None,
    )

    if "ucf101" in spec.layouts:
        _write_ucf_lists(out, spec, plans, chosen)
        paths["ucf101"] = out / "UCF-101"
    if "folder" in spec.layouts:
        paths["folder"] = out / "folder"
    write_json_atomic(out / MANIFEST, _manifest(spec, counts, names, box_parts, complete=True))
    seconds = time.perf_counter() - t0
    log.info("%s: wrote %d synthetic videos in %.1f s", out, len(plans), seconds)
    return SynthInfo(out, spec, names, counts, True, seconds, paths)


def _write_ucf_lists(out: Path, spec: SynthSpec, plans: list[VideoPlan], chosen: list[tuple[int, ClassDef]]) -> None:
    """classInd.txt and the three official train/test lists (CRLF line ends, as in the official files)."""
    lst = out / "ucfTrainTestlist"
    cnames = [camel_name(c.template) for _, c in chosen]
    write_text_atomic(lst / "classInd.txt", "".join(f"{i + 1} {n}\r\n" for i, n in enumerate(cnames)))
    videos = []
    for p in plans:
        if p.subset == "test":
            continue
        g, c = _ucf_group(p.subset, p.k)
        cn = cnames[p.class_pos]
        videos.append((p.class_pos, g, c, f"{cn}/v_{cn}_g{g:02d}_c{c:02d}.avi"))
    videos.sort()
    for split, test_groups in ((1, range(1, 8)), (2, range(8, 15)), (3, range(15, 22))):
        train_lines = [f"{rel} {cls + 1}\r\n" for cls, g, _, rel in videos if g not in test_groups]
        test_lines = [f"{rel}\r\n" for _, g, _, rel in videos if g in test_groups]
        write_text_atomic(lst / f"trainlist0{split}.txt", "".join(train_lines))
        write_text_atomic(lst / f"testlist0{split}.txt", "".join(test_lines))


# --------------------------------------------------------------------------------------------
# The registered loader: generate when missing, then read through the SSv2 loader.
# --------------------------------------------------------------------------------------------


@register_dataset("synthetic")
def load_synthetic(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    generate_missing: bool = False,
    workers: int = 2,
    progress: bool = False,
    **spec_options: Any,
) -> RecordSet:
    """The synthetic dataset at ``root``, read as SSv2; ``generate_missing`` writes it there first when missing.

    ``spec_options`` are :func:`generate`'s options (``seed``, ``videos_per_class``, ...). Without them
    an existing synthetic folder is read as it is; with them it must match (or be generated).
    Without ``generate_missing`` (``data.generate`` in a config) a missing dataset is an error naming
    ``root``: a mistyped path never gets a dataset written into it.
    Each record's ``meta`` gains ``caption`` and ``boxes_file`` (its Something-Else box file).
    """
    from vidrec.data.ssv2 import load_ssv2

    root = Path(root).expanduser()
    known = set(SynthSpec.__dataclass_fields__)
    unknown = sorted(set(spec_options) - known)
    if unknown:
        raise ConfigError(f"data: unknown option(s) for the synthetic dataset: {', '.join(unknown)}; known: {', '.join(sorted(known | {'generate_missing', 'workers', 'progress'}))}")
    manifest_path = root / MANIFEST
    manifest: dict[str, Any] | None = None
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{manifest_path}: unreadable manifest ({exc}). Delete {root} to regenerate it.") from exc
    if manifest is None or not manifest.get("complete") or spec_options:
        if not generate_missing and (manifest is None or not manifest.get("complete")):
            what = "no synthetic dataset" if manifest is None else "an unfinished synthetic dataset"
            raise DatasetError(
                f"data.root {root}: {what} there (is the path right?). Write it with `vidrec synth --out {root}`, "
                "or set data.generate=true to let this command write it."
            )
        generate(root, workers=workers, progress=progress, **spec_options)
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    rs = load_ssv2(root, split=split, strict=strict)
    captions = _read_captions(root / "captions.json")
    part_of = {vid: root / ANNOTATION_DIR / name for name, ids in manifest.get("box_parts", {}).items() for vid in ids}
    for name, recs in rs.subsets.items():
        rs.subsets[name] = [
            replace(r, fps=float(manifest["spec"]["fps"]), num_frames=int(manifest["spec"]["num_frames"]),
                    meta={**r.meta, "caption": captions.get(r.video_id, ""), "boxes_file": part_of.get(r.video_id)})
            for r in recs
        ]
    rs.info["synthetic"] = {"spec": manifest["spec"], "version": manifest.get("version"), "captions": root / "captions.json"}
    return rs


def _read_captions(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(s["video_id"]): str(s["caption"]) for s in data.get("sentences", [])}


def iter_classes() -> Iterable[str]:
    """All synthetic class templates, in index order."""
    return (c.template for c in CLASSES)
