"""Hand joints from MediaPipe, run on ground-truth hand crops (seed 000's "hybrid" preprocessing).

For each annotated frame, each ground-truth hand box is enlarged by ``margin``, made square and
clipped at the frame borders (:func:`square_roi`); MediaPipe's hand-landmark model runs on that
crop; its 21 joints (normalised to the crop) are mapped back to frame coordinates normalised by
the frame size (:func:`crop_to_frame`). Where MediaPipe finds no hand the joints are zeros and
the mask is 0: a frame is never dropped. Without boxes (``roi=False``) MediaPipe runs on the
whole frame and its detections fill the slots by handedness.

Coordinates: a pixel column ``u`` of a crop starting at ``x0`` is frame column ``x0 + u``; a
normalised crop coordinate ``x`` (MediaPipe: fraction of the crop width) is therefore frame
coordinate ``(x0 + x * crop_w) / frame_w``. MediaPipe's ``z`` (relative depth, in units of the
image width) is rescaled the same way: ``z * crop_w / frame_w``.

MediaPipe: the 0.10.x releases up to 0.10.21 carry ``mediapipe.solutions.hands`` and the hand model
in the wheel, so this runs offline; later releases (0.10.30+, 1.x) dropped both, and their Tasks
``HandLandmarker`` needs a ``.task`` model that no wheel ships. 0.10.21 needs numpy<2 and protobuf<5,
which the main environment (numpy 2, protobuf 7) cannot have. So :func:`make_landmarker` uses MediaPipe
in this process when it imports and works here (``pip install 'vidrec[hands]'`` in an environment of
its own), and otherwise runs it in the separate hands environment that ``make hands-env`` builds
(``.venv-hands`` beside the main virtualenv, or ``VIDREC_HANDS_PYTHON``), through a subprocess that
receives frames and returns joints (:class:`SubprocessHands`, protocol in :mod:`vidrec.data.streams.hands_worker`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vidrec.data.streams import hands_worker
from vidrec.errors import VidrecError

log = logging.getLogger(__name__)

NUM_JOINTS = 21
NUM_HANDS = 2
HANDEDNESS = ("Left", "Right")  # slot order without boxes; MediaPipe's labels (mirrored-image convention)
INSTALL_HINT = (
    "build the hands environment with `make hands-env` "
    "(or pip install 'vidrec[hands]' where numpy<2 and protobuf<5 are possible)"
)
HANDS_PYTHON_ENV = "VIDREC_HANDS_PYTHON"  # the hands environment's python; "off": never use one
HANDS_VENV = ".venv-hands"  # where `make hands-env` builds it: beside the main virtualenv


class HandsUnavailable(VidrecError):
    """MediaPipe (the ``hands`` extra) is missing or unusable."""


@dataclass(frozen=True)
class Roi:
    """A crop in pixel edges: columns ``x0 .. x1-1``, rows ``y0 .. y1-1`` of the frame."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` H×W×C → the crop (a view)."""
        return frame[self.y0 : self.y1, self.x0 : self.x1]


def square_roi(box: Sequence[float], frame_w: int, frame_h: int, *, margin: float = 0.25) -> Roi | None:
    """The square crop around ``box`` (pixel xyxy), enlarged by ``margin``, clipped at the frame.

    The square's side is ``max(box w, box h) * (1 + 2 * margin)`` (``margin`` of the longer side
    added on each side) rounded up to whole pixels, its corner the nearest pixel edge to where the
    centred square would start (so it covers the box to within half a pixel); the part outside the
    frame is cut off, so a crop at a border is no longer square. ``None`` when nothing of it lies
    inside the frame or the box is empty.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if not (w > 0 and h > 0) or margin < 0 or not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    side = max(1, math.ceil(max(w, h) * (1.0 + 2.0 * margin) - 1e-9))  # whole pixels, never smaller than the box
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left, top = math.floor(cx - side / 2.0 + 0.5), math.floor(cy - side / 2.0 + 0.5)
    roi = Roi(max(0, left), max(0, top), min(frame_w, left + side), min(frame_h, top + side))
    return roi if roi.width > 0 and roi.height > 0 else None


def crop_to_frame(points: np.ndarray, roi: Roi, frame_w: int, frame_h: int) -> np.ndarray:
    """Joints normalised to the crop ``(..., 3)`` → normalised to the frame (x by width, y by height)."""
    p = np.asarray(points, dtype=np.float64)
    out = np.empty_like(p)
    out[..., 0] = (roi.x0 + p[..., 0] * roi.width) / frame_w
    out[..., 1] = (roi.y0 + p[..., 1] * roi.height) / frame_h
    out[..., 2] = p[..., 2] * roi.width / frame_w
    return out


def frame_to_crop(points: np.ndarray, roi: Roi, frame_w: int, frame_h: int) -> np.ndarray:
    """The inverse of :func:`crop_to_frame`."""
    p = np.asarray(points, dtype=np.float64)
    out = np.empty_like(p)
    out[..., 0] = (p[..., 0] * frame_w - roi.x0) / roi.width
    out[..., 1] = (p[..., 1] * frame_h - roi.y0) / roi.height
    out[..., 2] = p[..., 2] * frame_w / roi.width
    return out


@dataclass
class HandDetection:
    """One hand found in an image: joints normalised to that image, MediaPipe's score and label."""

    joints: np.ndarray  # (21, 3)
    score: float
    handedness: str  # "Left" / "Right"


class HandLandmarker(Protocol):
    def detect(self, image: np.ndarray, *, max_hands: int) -> list[HandDetection]:
        """``image``: uint8 H×W×3 RGB → hands found, best first."""
        ...

    def close(self) -> None:
        """Free MediaPipe's graphs (and its worker process, if any)."""
        ...


def mediapipe_version() -> str | None:
    """The installed MediaPipe version, or ``None``."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("mediapipe")
    except PackageNotFoundError:
        return None


def _import_solutions_hands() -> Any:
    ver = mediapipe_version()
    if ver is None:
        raise HandsUnavailable(f"hand joints need MediaPipe, which is not installed: {INSTALL_HINT}")
    try:
        import mediapipe as mp
    except Exception as exc:  # any import-time failure means the extra is unusable
        raise HandsUnavailable(
            f"MediaPipe {ver} does not import ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
        ) from exc
    hands = getattr(getattr(mp, "solutions", None), "hands", None)
    if hands is None:
        raise HandsUnavailable(
            f"MediaPipe {ver} has no mediapipe.solutions.hands (removed in 0.10.30, with the bundled hand model); "
            f"install a release that has it: {INSTALL_HINT}"
        )
    return hands


class MediaPipeHands:
    """MediaPipe's hand-landmark model (``solutions.hands``, static-image mode: every frame on its own).

    Not picklable: each worker process builds its own (see :func:`make_landmarker`).
    """

    def __init__(self, *, max_hands: int = 1, min_confidence: float = 0.3, model_complexity: int = 1) -> None:
        _import_solutions_hands()
        self.max_hands = max_hands
        self._by_count: dict[int, Any] = {}
        self._opts: dict[str, Any] = {"min_confidence": min_confidence, "model_complexity": model_complexity}
        self._get(max_hands)

    def _get(self, n: int) -> Any:
        if n not in self._by_count:
            try:
                self._by_count[n] = hands_worker.build_hands(n, **self._opts)
            except (AttributeError, TypeError) as exc:
                raise HandsUnavailable(
                    f"MediaPipe {mediapipe_version()} cannot build its hand graph ({exc}); it needs protobuf<5 "
                    f"(this environment has protobuf {_protobuf_version()}). "
                    f"{INSTALL_HINT} in an environment with protobuf 4.x"
                ) from exc
        return self._by_count[n]

    def detect(self, image: np.ndarray, *, max_hands: int | None = None) -> list[HandDetection]:
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 2:
            return []
        found = hands_worker.detect(self._get(max_hands or self.max_hands), image)
        return [HandDetection(np.array(j, dtype=np.float64), s, lab) for j, s, lab in found]  # joints (21, 3)

    def close(self) -> None:
        for h in self._by_count.values():
            h.close()
        self._by_count.clear()


def _protobuf_version() -> str:
    try:
        from importlib.metadata import version

        return version("protobuf")
    except Exception:  # noqa: BLE001
        return "unknown"


class SubprocessHands:
    """MediaPipe in the separate hands environment, fed frames through a pipe (see :mod:`hands_worker`).

    One worker process per instance (each ``vidrec prepare`` worker builds its own); it ends with
    :meth:`close`, or when this process goes and its pipe closes.
    """

    def __init__(
        self, python: str, *, max_hands: int = 1, min_confidence: float = 0.3, model_complexity: int = 1
    ) -> None:
        self.python, self.max_hands = python, max_hands
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close(); MediaPipe's own chatter, kept for the error message
        options = json.dumps({"min_confidence": min_confidence, "model_complexity": model_complexity})
        try:  # -I: the hands environment sees none of this one's PYTHONPATH or packages
            self._proc = subprocess.Popen(
                [python, "-I", hands_worker.__file__, options],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
            )
        except OSError as exc:
            raise HandsUnavailable(f"the hands environment {python} does not run ({exc}); {INSTALL_HINT}") from exc
        hello = self._receive()
        if not hello.get("ready"):
            self.close()
            raise HandsUnavailable(f"the hands environment {python}: {hello.get('error', hello)}; {INSTALL_HINT}")
        self.version = str(hello.get("mediapipe", "?"))
        log.info("MediaPipe %s runs in %s", self.version, python)

    def _receive(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        head = self._proc.stdout.read(hands_worker.LENGTH.size)
        size = hands_worker.LENGTH.unpack(head)[0] if len(head) == hands_worker.LENGTH.size else 0
        body = self._proc.stdout.read(size) if size else b""
        if not body:
            code = self._proc.poll()
            self._log.seek(0)
            tail = self._log.read()[-600:].decode(errors="replace").strip().replace("\n", " | ")
            raise HandsUnavailable(f"the MediaPipe worker in {self.python} stopped (exit code {code}): {tail}")
        return dict(json.loads(body))

    def detect(self, image: np.ndarray, *, max_hands: int | None = None) -> list[HandDetection]:
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 2:
            return []
        if self._proc is None or self._proc.stdin is None:
            raise HandsUnavailable("the MediaPipe worker was closed")
        h, w = image.shape[:2]
        self._proc.stdin.write(hands_worker.REQUEST.pack(h, w, max_hands or self.max_hands) + image.tobytes())
        self._proc.stdin.flush()
        reply = self._receive()
        if "error" in reply:
            raise VidrecError(f"MediaPipe failed on a {w}x{h} image: {reply['error']}")
        return [
            HandDetection(np.array(d["joints"], dtype=np.float64), float(d["score"]), str(d["handedness"]))
            for d in reply["hands"]
        ]

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.write(hands_worker.REQUEST.pack(0, 0, 0))
                proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        self._log.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the subprocess module may be gone already
            self.close()


def hands_python() -> str | None:
    """The hands environment's python: ``$VIDREC_HANDS_PYTHON``, else ``.venv-hands`` beside the main
    virtualenv or in the working directory (where ``make hands-env`` builds it); ``None`` when there is none."""
    explicit = os.environ.get(HANDS_PYTHON_ENV, "").strip()
    if explicit.lower() == "off":
        return None
    if explicit:
        if not Path(explicit).is_file():
            raise HandsUnavailable(f"{HANDS_PYTHON_ENV}={explicit}: no such file; {INSTALL_HINT}")
        return explicit
    for candidate in _hands_venv_pythons():
        if candidate.is_file():
            return str(candidate)
    return None


def _hands_venv_pythons() -> list[Path]:
    return [root / HANDS_VENV / "bin" / "python" for root in (Path(sys.prefix).parent, Path.cwd())]


def make_landmarker(*, min_confidence: float = 0.3, model_complexity: int = 1) -> HandLandmarker:
    """MediaPipe hands in this process when it works here, else in the hands environment; or raise
    :class:`HandsUnavailable` saying how to get one."""
    try:
        return MediaPipeHands(min_confidence=min_confidence, model_complexity=model_complexity)
    except HandsUnavailable as here:
        python = hands_python()
        if python is None:
            looked = " or ".join(str(p) for p in _hands_venv_pythons())
            where = f"no hands environment at {looked}; {HANDS_PYTHON_ENV}=PATH names one"
            raise HandsUnavailable(f"{here} ({where})") from None
        log.debug("MediaPipe in this environment: %s; using %s", here, python)
        return SubprocessHands(python, min_confidence=min_confidence, model_complexity=model_complexity)


@dataclass
class FrameHands:
    """Both hand slots of one frame."""

    joints: np.ndarray  # (2, 21, 3) frame-normalised; zeros where not found
    mask: np.ndarray  # (2,) 1 = joints found
    score: np.ndarray  # (2,) MediaPipe's handedness score, 0 where not found
    handedness: np.ndarray  # (2,) 0 left, 1 right, -1 not found


def empty_frame_hands() -> FrameHands:
    return FrameHands(
        np.zeros((NUM_HANDS, NUM_JOINTS, 3), np.float32),
        np.zeros(NUM_HANDS, np.uint8),
        np.zeros(NUM_HANDS, np.float32),
        np.full(NUM_HANDS, -1, np.int8),
    )


def hands_in_frame(
    frame: np.ndarray,
    hand_boxes: Sequence[Sequence[float] | None] | None,
    landmarker: HandLandmarker,
    *,
    margin: float = 0.25,
) -> FrameHands:
    """Joints for one frame (uint8 H×W×3).

    ``hand_boxes``: per slot a pixel xyxy box or ``None`` (ROI mode: slot ``i`` holds the hand
    found in box ``i``); ``None`` for the whole list runs on the full frame and fills the slots by
    handedness (Left → 0, Right → 1; a second hand of the same label takes the free slot).
    """
    h, w = frame.shape[:2]
    out = empty_frame_hands()

    def put(slot: int, det: HandDetection, roi: Roi) -> None:
        out.joints[slot] = crop_to_frame(det.joints, roi, w, h).astype(np.float32)
        out.mask[slot] = 1
        out.score[slot] = det.score
        out.handedness[slot] = HANDEDNESS.index(det.handedness) if det.handedness in HANDEDNESS else -1

    if hand_boxes is None:
        full = Roi(0, 0, w, h)
        for det in landmarker.detect(frame, max_hands=NUM_HANDS)[:NUM_HANDS]:
            slot = HANDEDNESS.index(det.handedness) if det.handedness in HANDEDNESS else 0
            if out.mask[slot]:
                slot = 1 - slot
            if not out.mask[slot]:
                put(slot, det, full)
        return out
    for slot, box in enumerate(list(hand_boxes)[:NUM_HANDS]):
        if box is None:
            continue
        roi = square_roi(box, w, h, margin=margin)
        if roi is None:
            continue
        dets = landmarker.detect(roi.crop(frame), max_hands=1)
        if dets:
            put(slot, dets[0], roi)
    return out
