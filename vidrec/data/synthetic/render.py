"""Rendering: a :class:`~vidrec.data.synthetic.scenes.Scene` and a :class:`Look` become uint8 frames and exact boxes.

:func:`render_video` is one whole video of the dataset, deterministic from (seed, class, subset, k):
scene, look, pixels, per-frame boxes, and the facts its annotations need (caption, placeholders).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidrec.data.synthetic.scenes import Scene, _hand_geometry, make_scene
from vidrec.data.synthetic.spec import CLASSES, COLOURS, SHAPES, SHAPES_A, SKIN, SUBSET_CODE, VERSION, SynthSpec

Boxes = list[dict[int, tuple[float, float, float, float]]]  # per frame: {entity id: (x1, y1, x2, y2)}

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
    xx: np.ndarray,
    yy: np.ndarray,
    p: np.ndarray,
    s: float,
    spread: float,
    u: tuple[int, int],
    shoulder: tuple[float, float],
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


def _rgb(values: Any) -> tuple[int, int, int]:
    """Three numbers (an array or a sequence) as an ``(r, g, b)`` of ints."""
    r, g, b = (int(v) for v in values)
    return r, g, b


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


def _background(
    rng: np.random.Generator, scene: Scene, look: Look, size: int, xx: np.ndarray, yy: np.ndarray
) -> np.ndarray:
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
            if rng.random() < 0.5:
                m = _ellipse(xx, yy, cx, cy, ax, ay)
            else:
                m = (np.abs(xx - cx) <= ax) & (np.abs(yy - cy) <= ay)
            img[m] = img[m] * (1 - alpha) + c * alpha
        if look.distractor is not None:
            dcol, dshape, dx, dy, dr = look.distractor
            img[shape_mask(dshape, xx, yy, dx, dy, dr)] = _jit_colour(rng, COLOURS[dcol], 15)
    return img


def render_scene(scene: Scene, look: Look, rng: np.random.Generator, size: int) -> tuple[np.ndarray, Boxes]:
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
    boxes: Boxes = []
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
        skin, sleeve = _hand_masks(
            xx, yy, scene.hand_xy[i], float(scene.hand_s[i]), float(scene.hand_open[i]), scene.hand_dir, scene.shoulder
        )
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


# One video: scene + look + caption, deterministic from (seed, class, subset, k)

_CAPTIONS: dict[str, tuple[str, ...]] = {
    "move_lr": (
        "a hand moves a {obj} from left to right",
        "someone slides the {obj} to the right",
        "a hand carries a {obj} across the table from left to right",
        "the {obj} is moved rightwards by a hand",
    ),
    "move_lr~": (
        "a hand moves a {obj} from right to left",
        "someone slides the {obj} to the left",
        "a hand carries a {obj} across the table from right to left",
        "the {obj} is moved leftwards by a hand",
    ),
    "move_up": ("a hand lifts a {obj} up", "someone raises the {obj}", "a hand moves a {obj} upwards"),
    "move_up~": ("a hand moves a {obj} down", "someone lowers the {obj}", "a hand brings a {obj} downwards"),
    "towards": (
        "a hand brings a {obj} towards the camera",
        "someone moves the {obj} closer to the camera",
        "a {obj} grows larger as a hand moves it towards the camera",
    ),
    "towards~": (
        "a hand moves a {obj} away from the camera",
        "someone takes the {obj} away from the camera",
        "a {obj} gets smaller as a hand moves it away from the camera",
    ),
    "push_fall": (
        "a hand pushes a {obj} off the edge of the table",
        "someone pushes the {obj} until it falls off the table",
        "a {obj} is pushed off the table by a hand",
    ),
    "pretend_push": (
        "a hand pretends to push a {obj}",
        "someone reaches for the {obj} but does not push it",
        "a hand approaches a {obj} and pulls back without moving it",
    ),
    "put_into": (
        "a hand puts a {obj} into a {cont}",
        "someone places the {obj} inside the {cont}",
        "a hand drops a {obj} into a {cont}",
    ),
    "put_into~": (
        "a hand takes a {obj} out of a {cont}",
        "someone removes the {obj} from the {cont}",
        "a hand lifts a {obj} out of a {cont}",
    ),
}


def sample_look(rng: np.random.Generator, scene: Scene, size: int, clutter: float) -> Look:
    """Draw the appearance of one video: colours, shape, clutter, distractor, noise."""
    colour = str(rng.choice(list(COLOURS)))
    shape = str(rng.choice(SHAPES))
    others = [c for c in COLOURS if c != colour]
    cluttered = bool(rng.random() < clutter)
    distractor = None
    if cluttered and rng.random() < 0.8:
        dcol, dshape = str(rng.choice(others)), str(rng.choice([s for s in SHAPES if s != shape]))
        distractor = (
            dcol,
            dshape,
            float(rng.uniform(0.08, 0.92) * size),
            float(rng.uniform(0.1, 0.9) * size),
            float(rng.uniform(4, 7) * size / 96),
        )
    wall = _rgb(rng.uniform(90, 200, 3))
    table = np.asarray(wall) * rng.uniform(0.55, 0.85) + rng.uniform(-20, 20, 3)
    table_rgb = _rgb(table.clip(30, 230))
    floor_rgb = _rgb((np.asarray(table_rgb) * 0.55).clip(15, 200))
    return Look(
        colour=colour,
        shape=shape,
        skin=SKIN[int(rng.integers(len(SKIN)))],
        sleeve=_rgb(rng.uniform(20, 230, 3)),
        cluttered=cluttered,
        noise=float(rng.uniform(1.5, 5) if cluttered else rng.uniform(0, 2)),
        container_colour=str(rng.choice(others)) if scene.container is not None else None,
        distractor=distractor,
        wall=wall,
        table_rgb=table_rgb,
        floor_rgb=floor_rgb,
        rgb=_rgb(_jit_colour(rng, COLOURS[colour], 20)),
    )


def render_video(spec: SynthSpec, class_full: int, subset: str, k: int) -> tuple[np.ndarray, Boxes, dict[str, Any]]:
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
