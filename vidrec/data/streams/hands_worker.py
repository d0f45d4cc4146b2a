"""MediaPipe's hand landmarks, callable in this process or served to another one over pipes.

This module imports only the standard library and numpy (MediaPipe lazily), and nothing from vidrec, so
that it runs as a script inside the separate hands environment (``make hands-env``: mediapipe 0.10.21 with
numpy<2 and protobuf<5, which the main environment cannot have)::

    <hands-env>/bin/python -I hands_worker.py '{"min_confidence": 0.3, "model_complexity": 1}'

Protocol (binary, little-endian, on stdin / stdout): each request is ``<III`` = height, width, max hands,
then ``height × width × 3`` bytes of an RGB uint8 image; height 0 ends the worker (so does end of input).
Each reply is ``<I`` = length, then that many bytes of JSON: ``{"hands": [{"joints": [[x, y, z] × 21],
"score": s, "handedness": "Left"}, ...]}`` or ``{"error": "..."}``. The first reply, before any request,
says ``{"ready": true, "mediapipe": "<version>"}`` or the error that keeps MediaPipe from starting.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from typing import Any, BinaryIO

import numpy as np

REQUEST = struct.Struct("<III")
LENGTH = struct.Struct("<I")

Detection = tuple[list[list[float]], float, str]  # joints (21 × xyz, normalised to the image), score, handedness


def build_hands(max_hands: int, *, min_confidence: float, model_complexity: int) -> Any:
    """MediaPipe's ``solutions.hands.Hands`` in static-image mode (every image on its own)."""
    import mediapipe as mp

    hands = mp.solutions.hands
    return hands.Hands(
        static_image_mode=True,
        max_num_hands=max_hands,
        min_detection_confidence=min_confidence,
        model_complexity=model_complexity,
    )


def detect(graph: Any, image: np.ndarray) -> list[Detection]:
    """Hands in an RGB uint8 ``H×W×3`` image, best first."""
    result = graph.process(np.ascontiguousarray(image, dtype=np.uint8))
    out = []
    for lms, cls in zip(result.multi_hand_landmarks or [], result.multi_handedness or []):
        best = cls.classification[0]
        out.append(([[p.x, p.y, p.z] for p in lms.landmark], float(best.score), str(best.label)))
    out.sort(key=lambda d: -d[1])
    return out


def _reply(stream: BinaryIO, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    stream.write(LENGTH.pack(len(data)) + data)
    stream.flush()


def _read(stream: BinaryIO, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def serve(options: dict[str, Any], stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer requests until height 0 or the end of input."""
    graphs: dict[int, Any] = {}
    try:
        import mediapipe as mp

        graphs[1] = build_hands(1, **options)
        _reply(stdout, {"ready": True, "mediapipe": getattr(mp, "__version__", "?")})
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported to the caller, which raises
        _reply(stdout, {"error": f"MediaPipe does not start here ({type(exc).__name__}: {exc})"})
        return
    while True:
        header = _read(stdin, REQUEST.size)
        if header is None:
            return
        h, w, max_hands = REQUEST.unpack(header)
        if h == 0:
            return
        data = _read(stdin, h * w * 3)
        if data is None:
            return
        try:
            if max_hands not in graphs:
                graphs[max_hands] = build_hands(max_hands, **options)
            image = np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3)
            hands = [{"joints": j, "score": s, "handedness": lab} for j, s, lab in detect(graphs[max_hands], image)]
            _reply(stdout, {"hands": hands})
        except Exception as exc:  # noqa: BLE001 - one bad image is answered, the worker stays up
            _reply(stdout, {"error": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str]) -> None:
    options = json.loads(argv[1]) if len(argv) > 1 else {"min_confidence": 0.3, "model_complexity": 1}
    replies = os.fdopen(os.dup(1), "wb")  # the protocol keeps the real stdout ...
    os.dup2(2, 1)  # ... and whatever MediaPipe's native code prints there goes to stderr instead
    sys.stdout = sys.stderr
    serve(options, sys.stdin.buffer, replies)


if __name__ == "__main__":
    main(sys.argv)
