"""Scenes: the per-frame state of hand, object and container, as plain arrays (no pixels).

One function per scene kind draws its motion from a random generator; :data:`SCENES` maps a
:class:`~vidrec.data.synthetic.spec.ClassDef`'s ``scene`` name to it, and :func:`make_scene` draws
what every kind shares (object size, timing, table), calls it, and adds the arm's pivot. Each kind
must draw its random numbers in a fixed order: a dataset is a function of its seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np


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

    def reversed(self) -> Scene:
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


def _piecewise(
    t: np.ndarray, knots: Sequence[float], values: Sequence[np.ndarray | float], smooth: Sequence[bool]
) -> np.ndarray:
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
    out = rng.uniform(0.04, 0.12) * size  # close to the frame: the arm's angle changes a lot with the hand's place
    if u == (0, -1):
        return along, size + out
    if u == (0, 1):
        return along, -out
    if u == (1, 0):
        return -out, rng.uniform(0.6, 0.85) * size
    return size + out, rng.uniform(0.6, 0.85) * size


@dataclass(frozen=True)
class _Draw:
    """What every scene kind shares, drawn first and in this order by :func:`make_scene`."""

    rng: np.random.Generator
    n: int  # frames
    size: int  # canvas side in pixels
    S: float  # size / 96: lengths below are in pixels of a 96×96 canvas
    t: np.ndarray  # (n,) frame times 0..n-1
    r0: float  # object radius
    s0: float  # hand scale
    t1: float  # the hand reaches the object
    t2: float  # the object starts moving
    t3: float  # the object stops
    t4: float  # the hand leaves it
    smooth: list[bool]  # per motion segment: eased (True) or linear
    table: tuple[float, float, float]  # (x0, x1, top)

    @property
    def ones(self) -> np.ndarray:
        return np.ones(self.n)


def _scene(
    d: _Draw,
    *,
    obj: np.ndarray,
    radius: np.ndarray,
    hand: np.ndarray,
    hand_s: np.ndarray,
    hand_open: np.ndarray,
    u: tuple[int, int],
    table: tuple[float, float, float] | None = None,
    container: tuple[float, float, float, float] | None = None,
) -> Scene:
    """A scene kind's result; :func:`make_scene` adds the shoulder."""
    return Scene(
        obj_xy=obj,
        obj_r=np.asarray(radius, dtype=np.float64),
        hand_xy=hand,
        hand_s=np.asarray(hand_s, dtype=np.float64),
        hand_open=np.clip(hand_open, 0, 1),
        hand_dir=u,
        container=container,
        table=d.table if table is None else table,
    )


def _carry(d: _Draw, obj: np.ndarray, radius: np.ndarray, hand_s: np.ndarray, u: tuple[int, int]) -> dict[str, Any]:
    """The hand comes in from off-screen, grips the object along ``obj`` (T, 2) from t1 to t4, and leaves."""
    n, t = d.n, d.t
    grip = np.stack([_contact(obj[i], radius[i], hand_s[i], u) for i in range(n)])
    start = _offscreen(grip[0], u, d.size, hand_s[0])
    end = _offscreen(grip[-1], u, d.size, hand_s[-1])
    hand = grip.copy()
    before, after = t < d.t1, t > d.t4
    hand[before] = _piecewise(t[before], [0, d.t1], [start, grip[0]], [d.smooth[2]])
    hand[after] = _piecewise(t[after], [d.t4, n - 1], [grip[-1], end], [d.smooth[3]])
    hand_open = _piecewise(t, [d.t1 - 1, d.t2, d.t3, d.t4 + 1], [1.0, 0.25, 0.25, 1.0], [True, False, True])
    hand = hand + _jitter(d.rng, n, 0.35 * d.S)
    return dict(obj=obj, radius=radius, hand=hand, hand_s=hand_s, hand_open=hand_open, u=u)


def move_lr(d: _Draw) -> Scene:
    """An object carried from left to right along the table (reversed: right to left)."""
    rng, size, S = d.rng, d.size, d.S
    y = rng.uniform(0.48, 0.72) * size
    p0 = np.array([rng.uniform(0.12, 0.3) * size, y + rng.uniform(-3, 3) * S])
    p1 = np.array([rng.uniform(0.7, 0.88) * size, y + rng.uniform(-3, 3) * S])
    radius = d.r0 * d.ones
    u = (0, -1) if rng.random() < 0.7 else (0, 1)
    obj = _piecewise(d.t, [d.t2, d.t3], [p0, p1], [d.smooth[1]])
    return _scene(d, **_carry(d, obj, radius, d.s0 * d.ones, u))


def move_up(d: _Draw) -> Scene:
    """An object lifted up (reversed: lowered)."""
    rng, size, S = d.rng, d.size, d.S
    x = rng.uniform(0.3, 0.7) * size
    p0 = np.array([x + rng.uniform(-3, 3) * S, rng.uniform(0.66, 0.8) * size])
    p1 = np.array([x + rng.uniform(-3, 3) * S, rng.uniform(0.2, 0.36) * size])
    radius = d.r0 * d.ones
    obj = _piecewise(d.t, [d.t2, d.t3], [p0, p1], [d.smooth[1]])
    return _scene(d, **_carry(d, obj, radius, d.s0 * d.ones, (0, -1)))


def towards(d: _Draw) -> Scene:
    """An object brought towards the camera: it and the hand grow (reversed: away from the camera)."""
    rng, size, S, t = d.rng, d.size, d.S, d.t
    x = rng.uniform(0.35, 0.65) * size
    y = rng.uniform(0.42, 0.55) * size
    p0 = np.array([x, y])
    p1 = np.array([x + rng.uniform(-4, 4) * S, y + rng.uniform(0.06, 0.1) * size])
    ra = 0.8 * d.r0
    rb = min(ra * rng.uniform(2.1, 2.6), 0.26 * size)
    radius = _piecewise(t, [d.t2, d.t3], [ra, rb], [d.smooth[0]])
    obj = _piecewise(t, [d.t2, d.t3], [p0, p1], [d.smooth[1]])
    return _scene(d, **_carry(d, obj, radius, d.s0 * radius / radius[0], (0, -1)))


def _to_the_edge(d: _Draw) -> tuple[int, np.ndarray, float, tuple[float, float, float], np.ndarray, np.ndarray]:
    """The setting of both push kinds: an object some way from the table's edge, the hand off-screen behind
    it. Returns (direction ±1, object centre, x of the edge, table, palm at contact, palm off-screen)."""
    rng, size = d.rng, d.size
    direction = 1 if rng.random() < 0.5 else -1
    u = (direction, 0)
    edge_off = rng.uniform(0.22, 0.4) * size  # distance from the object to the table edge
    ox = rng.uniform(0.3, 0.45) * size if direction == 1 else size - rng.uniform(0.3, 0.45) * size
    oy = rng.uniform(0.55, 0.72) * size
    x_edge = ox + direction * edge_off
    table = (0.0, x_edge, d.table[2]) if direction == 1 else (x_edge, float(size), d.table[2])
    o0 = np.array([ox, oy])
    grip0 = _contact(o0, d.r0, d.s0, u)
    return direction, o0, x_edge, table, grip0, _offscreen(grip0, u, size, d.s0)


def push_fall(d: _Draw) -> Scene:
    """The hand pushes an object over the table's edge; it falls out of the frame."""
    rng, n, t, r0, s0 = d.rng, d.n, d.t, d.r0, d.s0
    direction, o0, x_edge, table, _, start = _to_the_edge(d)
    u = (direction, 0)
    oy = o0[1]
    t_fall = rng.uniform(0.14, 0.2) * (n - 1)  # frames from the edge to out of sight
    t_push_end = min(d.t3, n - 2 - t_fall)
    o1 = np.array([x_edge + direction * r0 * 0.6, oy])
    obj = _piecewise(t, [d.t2, t_push_end], [o0, o1], [d.smooth[1]])
    v = (o1[0] - o0[0]) / max(t_push_end - d.t2, 1.0)  # speed when leaving the edge
    g = 2 * (d.size + 2.5 * r0 - oy) / t_fall**2  # falls below the bottom border in t_fall frames
    fall = t > t_push_end
    dt = t[fall] - t_push_end
    obj[fall, 0] = o1[0] + v * 0.6 * dt
    obj[fall, 1] = oy + 0.5 * g * dt**2
    grip = np.stack([_contact(obj[i], r0, s0, u) for i in range(n)])
    hand = grip.copy()
    hand[fall] = grip[np.flatnonzero(~fall)[-1]]
    end = _offscreen(hand[-1], u, d.size, s0)
    before, after = t < d.t1, t > d.t4
    hand[before] = _piecewise(t[before], [0, d.t1], [start, grip[0]], [d.smooth[2]])
    hand[after] = _piecewise(t[after], [d.t4, n - 1], [hand[np.flatnonzero(~after)[-1]], end], [d.smooth[3]])
    hand_open = _piecewise(t, [d.t1 - 1, d.t2, d.t3, d.t4 + 1], [1.0, 0.6, 0.6, 1.0], [True, False, True])
    hand = hand + _jitter(rng, n, 0.35 * d.S)
    return _scene(d, obj=obj, radius=r0 * d.ones, hand=hand, hand_s=s0 * d.ones, hand_open=hand_open, u=u, table=table)


def pretend_push(d: _Draw) -> Scene:
    """The hand feints at an object and pulls back; the object never moves."""
    rng, n, t, S = d.rng, d.n, d.t, d.S
    direction, o0, _, table, grip0, start = _to_the_edge(d)
    u = (direction, 0)
    obj = np.tile(o0, (n, 1))
    gap = rng.uniform(1.0, 4.0) * S
    near = grip0 - np.asarray(u) * gap
    wobble = near - np.asarray(u) * rng.uniform(2.0, 5.0) * S  # a feint: forward, back, forward
    mid = (d.t2 + d.t3) / 2
    hand = _piecewise(
        t,
        [0, d.t1, d.t2 + (mid - d.t2) * 0.5, mid, d.t3, d.t4, n - 1],
        [start, near, wobble, near, near, near, start],
        [d.smooth[2], True, True, True, False, d.smooth[3]],
    )
    hand_open = _piecewise(t, [d.t1 - 1, d.t2, d.t3, d.t4 + 1], [1.0, 0.6, 0.6, 1.0], [True, False, True])
    hand = hand + _jitter(rng, n, 0.35 * S)
    return _scene(
        d, obj=obj, radius=d.r0 * d.ones, hand=hand, hand_s=d.s0 * d.ones, hand_open=hand_open, u=u, table=table
    )


def put_into(d: _Draw) -> Scene:
    """The hand lifts an object over a box's rim and lowers it inside (reversed: takes it out)."""
    rng, size, S, t, r0 = d.rng, d.size, d.S, d.t, d.r0
    u = (0, 1)  # the hand comes from the top and grips the object from above
    side = 1 if rng.random() < 0.5 else -1
    cw = rng.uniform(0.3, 0.38) * size
    ch = max(rng.uniform(0.2, 0.26) * size, 2 * r0 + 4 * S)
    bottom = rng.uniform(0.8, 0.9) * size
    cx = rng.uniform(0.28, 0.36) * size if side == 1 else size - rng.uniform(0.28, 0.36) * size
    top = bottom - ch
    ox = cx + side * rng.uniform(0.36, 0.46) * size
    oy = bottom - r0 - rng.uniform(0, 3) * S
    above = top - r0 - rng.uniform(4, 9) * S
    inside = top + r0 + rng.uniform(2, 3.5) * S
    o0, o1, o2, o3 = (np.array([ox, oy]), np.array([ox, above]), np.array([cx, above]), np.array([cx, inside]))
    f = rng.uniform(0.25, 0.35)
    k1 = d.t2 + (d.t3 - d.t2) * f
    k2 = d.t3 - (d.t3 - d.t2) * f
    obj = _piecewise(t, [d.t2, k1, k2, d.t3], [o0, o1, o2, o3], [d.smooth[1], True, d.smooth[4]])
    return _scene(d, **_carry(d, obj, r0 * d.ones, d.s0 * d.ones, u), container=(cx, top, cw, ch))


# scene kind (ClassDef.scene) -> the function that draws it
SCENES: dict[str, Callable[[_Draw], Scene]] = {
    "move_lr": move_lr,
    "move_up": move_up,
    "towards": towards,
    "push_fall": push_fall,
    "pretend_push": pretend_push,
    "put_into": put_into,
}


def make_scene(kind: str, rng: np.random.Generator, n: int, size: int) -> Scene:
    """Sample one scene of ``kind`` (a key of :data:`SCENES`) with ``n`` frames on a ``size``×``size`` canvas."""
    if kind not in SCENES:
        raise ValueError(f"unknown scene kind {kind!r}; known: {', '.join(SCENES)}")
    S = size / 96.0
    r0 = rng.uniform(8.0, 11.0) * S
    s0 = rng.uniform(1.1, 1.35) * S
    t1, t2, t3, t4 = _phases(rng, n)
    smooth = [bool(b) for b in rng.random(6) < 0.6]
    table = _table(rng, size)
    d = _Draw(rng, n, size, S, np.arange(n, dtype=np.float64), r0, s0, t1, t2, t3, t4, smooth, table)
    scene = SCENES[kind](d)
    return replace(scene, shoulder=_shoulder(rng, scene.hand_dir, size))
