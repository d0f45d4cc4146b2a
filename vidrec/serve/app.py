"""The web demo behind ``vidrec serve``: classify an uploaded video, search a library with text.

The logic lives in plain functions that need no gradio (:func:`load_resources`, :func:`classify`,
:func:`text_search`, :func:`video_search`, :func:`render_prediction`, :func:`render_hit`), so they are
tested directly; :func:`build_app` only wires them to gradio components. The model and the store
(with its encoder) are loaded once, by :func:`load_resources`, never per request.

::

    upload ─▶ classify(predictor) ─▶ top-k {class: prob} ─▶ gr.Label   (+ optional overlay video)
    text   ─▶ text_search(store)  ─▶ SearchRow per video ─▶ gr.Dataframe + the best hit's best moment

Preview videos are re-encoded (H.264 mp4, short side <= 256 px) into a private temporary folder, so
the browser can play them whatever the library's containers are, and no library folder is exposed
to the web server (gradio serves files from the system temp dir by default).
"""

# No ``from __future__ import annotations`` here: gradio reads the handler annotations
# (``gr.SelectData``) at wiring time, and ``gr`` is a local name inside build_app.

import atexit
import functools
import logging
import math
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

import numpy as np

from vidrec.errors import VideoError, VidrecError

if TYPE_CHECKING:
    import gradio

    from vidrec.embed.store import Hit, Store
    from vidrec.engine.predict import Predictor

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'vidrec[serve]'"
DEVICES = ("auto", "cpu", "cuda", "mps")
PREVIEW_SHORT_SIDE = 256  # preview videos are decoded straight to this short side (px), down or up
PREVIEW_MAX_FRAMES = 240  # longer spans are subsampled (playback keeps real time)
MOMENT_CONTEXT_S = 1.0  # seconds shown before and after a moment
KEEP_PREVIEWS = 32  # preview files kept on disk (gradio copies what it serves into its own cache)
TABLE_HEADERS = ["#", "score", "video", "moment start (s)", "moment end (s)", "moments (s)"]

PathLike = str | Path


class ServeError(VidrecError):
    """The demo was started without what a tab needs, or a request is incomplete."""


@dataclass
class SearchRow:
    """One search result: a stored video, its cosine score and its best moments (best first)."""

    rank: int
    path: str
    score: float
    moments: list[tuple[float, float, float]] = field(default_factory=list)  # (start_s, end_s, score)

    def table_row(self) -> list[Any]:
        """The row shown in the results table (columns :data:`TABLE_HEADERS`)."""
        start, end = (round(self.moments[0][0], 2), round(self.moments[0][1], 2)) if self.moments else (None, None)
        spans = ", ".join(f"{a:.2f}–{b:.2f}" for a, b, _ in self.moments)
        return [self.rank, round(self.score, 4), self.path, start, end, spans]


@dataclass
class Resources:
    """What the demo loads once at startup: a predictor (Classify tab) and/or a store (Search tab)."""

    predictor: Optional["Predictor"] = None
    store: Optional["Store"] = None
    preview_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vidrec-serve-")))

    def __post_init__(self) -> None:
        atexit.register(shutil.rmtree, self.preview_dir, True)

    @property
    def classes(self) -> list[str]:
        return list(self.predictor.ck.classes) if self.predictor is not None else []

    def preview_path(self, stem: str) -> Path:
        """A fresh file name for a preview video; old previews beyond :data:`KEEP_PREVIEWS` are removed."""
        self.preview_dir.mkdir(parents=True, exist_ok=True)
        old = sorted(self.preview_dir.glob("*.mp4"), key=lambda p: p.stat().st_mtime if p.exists() else 0.0)
        for p in old[: max(0, len(old) - KEEP_PREVIEWS + 1)]:
            p.unlink(missing_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:40] or "video"
        return self.preview_dir / f"{safe}-{uuid.uuid4().hex[:8]}.mp4"


def load_resources(
    checkpoint: PathLike | None = None,
    store: PathLike | None = None,
    *,
    device: str = "auto",
    views: int | None = None,
) -> Resources:
    """Load the checkpoint's model and open the store with its encoder, once, with clear errors."""
    if checkpoint is None and store is None:
        raise ServeError(
            "nothing to serve: give --checkpoint DIR (classify uploaded videos), --store DIR "
            "(text search over a library built by vidrec embed), or both"
        )
    if device not in DEVICES:
        raise ServeError(f"--device {device}: unknown; use one of {', '.join(DEVICES)}")
    from vidrec.embed.encoders import resolve_device

    predictor = None
    if checkpoint is not None:
        from vidrec.engine.predict import Predictor

        predictor = Predictor(Path(checkpoint), device=str(resolve_device(device)), views=views)
        log.info("loaded %s (%s, %d classes)", checkpoint, predictor.ck.cfg.model.name, len(predictor.ck.classes))
    st = None
    if store is not None:
        from vidrec.embed.store import Store, StoreError

        st = Store(store)
        if st.count() == 0:
            raise StoreError(f"{store}: the store holds no videos yet; run vidrec embed VIDEO_DIR --out {store}")
        st.encoder(device=device)  # the encoder that built the store, loaded now rather than on the first query
        log.info("opened store %s (%d videos, encoder %s)", store, st.count(), st.encoder_description.get("source"))
    return Resources(predictor=predictor, store=st)


# ---------------------------------------------------------------------------------------------- handlers
def _uploaded(video_path: PathLike | None) -> Path:
    if video_path is None or not str(video_path).strip():
        raise ServeError("no video uploaded: drop a video file (mp4, webm, avi, mkv, ...) into the box first")
    path = Path(video_path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file; upload the video again")
    return path


@contextmanager
def _named(path: Path) -> Iterator[None]:
    """Video errors name the uploaded file, not the upload folder it was put in (``/tmp/gradio/<hash>/``)."""
    try:
        yield
    except VideoError as exc:
        raise VideoError(str(exc).replace(str(path), path.name)) from None


def classify(predictor: Optional["Predictor"], video_path: PathLike | None, topk: int = 5) -> list[tuple[str, float]]:
    """Top-``topk`` ``(class, probability)`` of one video, best first (as ``vidrec predict``)."""
    if predictor is None:
        raise ServeError("the Classify tab needs a model: start vidrec serve with --checkpoint DIR")
    path = _uploaded(video_path)
    if int(topk) < 1:
        raise ServeError(f"top-k {topk}: ask for at least one class")
    with _named(path):
        return predictor.predict_one(path, topk=int(topk)).topk


def _rows(hits: Sequence["Hit"]) -> list[SearchRow]:
    return [SearchRow(i + 1, h.path, h.score, [(m.start_s, m.end_s, m.score) for m in h.moments]) for i, h in enumerate(hits)]


def _need_store(store: Optional["Store"]) -> "Store":
    if store is None:
        raise ServeError("the Search tab needs a store: start vidrec serve with --store DIR (built by vidrec embed)")
    return store


def text_search(store: Optional["Store"], query: str | None, *, k: int = 5, moments: int = 3, encoder: Any = None) -> list[SearchRow]:
    """Videos of ``store`` that best match a sentence, with their best moments.

    ``encoder`` embeds the query; by default the store's own (the one that built it)."""
    from vidrec.embed.search import _check_queries, search

    st = _need_store(store)
    text = _check_queries([query if query is not None else ""])[0]
    if encoder is not None:
        vec = encoder.encode_text([text])[0].float().cpu().numpy()
        return _rows(search(st, vec, k=int(k), moments=int(moments)))
    return _rows(search(st, text, k=int(k), moments=int(moments)))


def video_search(store: Optional["Store"], video_path: PathLike | None, *, k: int = 5, moments: int = 3) -> list[SearchRow]:
    """Videos of ``store`` most like an uploaded one (the store's encoder embeds it)."""
    from vidrec.embed.search import search_by_video

    st = _need_store(store)
    path = _uploaded(video_path)
    with _named(path):
        return _rows(search_by_video(st, path, k=int(k), moments=int(moments)))


# ---------------------------------------------------------------------------------------------- previews
def _preview_frames(path: Path, start_s: float = 0.0, end_s: float | None = None) -> tuple[np.ndarray, list[int], float, float]:
    """Frames of ``path`` between two times, decoded small: ``(T, H, W, 3)`` uint8, their indices,
    the video's fps and the preview's (lower where frames were skipped)."""
    from vidrec.video.decode import AutoDecoder

    decoder = AutoDecoder()
    info = decoder.info(path)
    if info.num_frames <= 0:
        raise VideoError(f"{path}: the video has no frames")
    fps = info.fps or 12.0
    first = max(0, min(info.num_frames - 1, math.floor(start_s * fps)))
    last = info.num_frames if end_s is None else max(first + 1, min(info.num_frames, math.ceil(end_s * fps)))
    step = max(1, math.ceil((last - first) / PREVIEW_MAX_FRAMES))
    indices = list(range(first, last, step))
    short = min(info.width, info.height) or PREVIEW_SHORT_SIDE
    scale = PREVIEW_SHORT_SIDE / short  # down (or up, so the captions stay legible)
    size = (max(2, round(info.height * scale / 2) * 2), max(2, round(info.width * scale / 2) * 2))  # even: yuv420p
    frames = decoder.decode(path, indices, size=size).numpy()  # (T, H, W, 3)
    return frames, indices, fps, fps / step


def render_prediction(video_path: PathLike, topk: Sequence[tuple[str, float]], out: PathLike) -> Path:
    """The uploaded video (small, at most PREVIEW_MAX_FRAMES frames) with the top-3 classes drawn on it, as ``out`` (.mp4)."""
    from vidrec.report.visualize import render_clip
    from vidrec.video.encode import write_video

    path = _uploaded(video_path)
    with _named(path):
        frames, indices, _, fps = _preview_frames(path)
    drawn = render_clip(frames, topk=topk, frame_indices=indices, min_size=min(frames.shape[1:3]))
    return write_video(out, drawn, fps=fps)


def render_hit(row: SearchRow, out: PathLike, *, context_s: float = MOMENT_CONTEXT_S) -> Path:
    """The hit's best moment with ``context_s`` around it (the whole video without moments), captioned, as ``out``."""
    from vidrec.report.visualize import draw_frame
    from vidrec.video.encode import write_video

    path = Path(row.path)
    if not path.is_file():
        raise VideoError(f"{path}: the stored video is gone (moved or deleted since vidrec embed)")
    caption = f"#{row.rank}  score {row.score:.3f}"
    start, end = (row.moments[0][0], row.moments[0][1]) if row.moments else (0.0, None)
    if end is None:
        frames, indices, video_fps, fps = _preview_frames(path)
    else:
        frames, indices, video_fps, fps = _preview_frames(path, max(0.0, start - context_s), end + context_s)
    drawn = []
    for frame, i in zip(frames, indices):
        t = i / video_fps
        inside = end is not None and start <= t < max(end, start + 1.0 / video_fps)
        lines = [caption, f"best moment {start:.2f}-{end:.2f} s"] if inside else [caption, f"{t:.2f} s"]
        drawn.append(draw_frame(frame, lines=lines))
    return write_video(out, np.stack(drawn), fps=fps)


# ---------------------------------------------------------------------------------------------- gradio
def require_gradio() -> Any:
    try:
        import gradio
    except ImportError as exc:
        raise VidrecError(f"the web demo needs gradio, which is not installed ({exc}): {INSTALL_HINT}") from exc
    return gradio


def build_app(
    checkpoint: PathLike | None = None,
    store: PathLike | None = None,
    *,
    device: str = "auto",
    views: int | None = None,
    topk: int = 5,
    k: int = 5,
    moments: int = 3,
    resources: Resources | None = None,
) -> "gradio.Blocks":
    """A gradio ``Blocks`` with a Classify tab (``checkpoint``) and a Search tab (``store``); not launched.

    ``resources`` (from :func:`load_resources`) skips loading. Errors a user causes show in the page."""
    if resources is None and checkpoint is None and store is None:
        load_resources(None, None)  # raises the "nothing to serve" error before gradio is imported
    gr = require_gradio()
    res = resources or load_resources(checkpoint, store, device=device, views=views)

    def ui(fn: Any) -> Any:
        """VidrecError → gr.Error, whose message the page shows."""

        @functools.wraps(fn)
        def wrapper(*args: Any) -> Any:
            try:
                return fn(*args)
            except VidrecError as exc:  # the user's mistake: shown in the page, one log line, no traceback
                log.info("request refused: %s", exc)
                raise gr.Error(str(exc), print_exception=False) from None

        return wrapper

    def on_classify(video: str | None, top: float, overlay: bool) -> tuple[dict[str, float], str | None]:
        top_k = classify(res.predictor, video, int(top))
        preview = None
        if overlay:
            preview = str(render_prediction(video, top_k, res.preview_path(Path(str(video)).stem)))  # type: ignore[arg-type]
        return {c: p for c, p in top_k}, preview

    def _results(rows: list[SearchRow]) -> tuple[list[list[Any]], str | None]:
        best = str(render_hit(rows[0], res.preview_path(Path(rows[0].path).stem))) if rows else None
        return [r.table_row() for r in rows], best

    def on_search(query: str, n: float, m: float) -> tuple[list[list[Any]], str | None]:
        return _results(text_search(res.store, query, k=int(n), moments=int(m)))

    def on_similar(video: str | None, n: float, m: float) -> tuple[list[list[Any]], str | None]:
        return _results(video_search(res.store, video, k=int(n), moments=int(m)))

    def on_select(table: Any, evt: gr.SelectData) -> str | None:
        rows = table.values.tolist() if hasattr(table, "values") else list(table or [])
        r = getattr(evt, "row_value", None) or (rows[evt.index[0]] if rows and evt.index and evt.index[0] < len(rows) else None)
        if r is None or not r[2]:
            return None
        moment = [(float(r[3]), float(r[4]), 0.0)] if r[3] not in (None, "") and r[4] not in (None, "") else []
        row = SearchRow(int(r[0]), str(r[2]), float(r[1]), moment)
        return str(render_hit(row, res.preview_path(Path(row.path).stem)))

    classes = res.classes
    with gr.Blocks(title="vidrec", analytics_enabled=False) as demo:
        gr.Markdown("# vidrec\nClassify a video with a trained checkpoint, or search a library of videos with a sentence.")
        with gr.Tab("Classify"):
            if res.predictor is None:
                gr.Markdown("No model loaded: start `vidrec serve --checkpoint DIR` to classify videos.")
            else:
                ck = res.predictor.ck
                gr.Markdown(f"Model `{ck.cfg.model.name}` from `{ck.path}`, {len(classes)} classes.")
            with gr.Row():
                with gr.Column():
                    video_in = gr.Video(label="video", sources=["upload"])
                    top_in = gr.Slider(1, max(2, len(classes)), value=min(topk, max(2, len(classes))), step=1, label="top-k classes")
                    overlay_in = gr.Checkbox(value=False, label="also draw the top-3 on the video (slower)")
                    classify_btn = gr.Button("Classify", variant="primary")
                with gr.Column():
                    label_out = gr.Label(num_top_classes=max(1, len(classes)), label="classes")
                    overlay_out = gr.Video(label="prediction drawn on the video", interactive=False)
            classify_btn.click(ui(on_classify), [video_in, top_in, overlay_in], [label_out, overlay_out], api_name="classify")
        with gr.Tab("Search"):
            if res.store is None:
                gr.Markdown("No store loaded: start `vidrec serve --store DIR` (built by `vidrec embed`) to search videos.")
            else:
                gr.Markdown(f"Store `{res.store.path}`: {res.store.count()} videos, encoder "
                            f"`{res.store.encoder_description.get('source')}`. Click a row to play that hit.")
            with gr.Row():
                query_in = gr.Textbox(label="describe what happens", placeholder="a person pours water into a cup", scale=4)
                search_btn = gr.Button("Search", variant="primary", scale=1)
            with gr.Row():
                k_in = gr.Slider(1, 50, value=k, step=1, label="videos")
                m_in = gr.Slider(0, 10, value=moments, step=1, label="moments per video")
            with gr.Accordion("or find videos like an uploaded one", open=False):
                like_in = gr.Video(label="video", sources=["upload"])
                like_btn = gr.Button("Find similar videos")
            with gr.Row():
                table_out = gr.Dataframe(headers=TABLE_HEADERS, type="array", interactive=False, label="results", scale=3)
                hit_out = gr.Video(label="hit (its best moment)", interactive=False, scale=2)
            search_btn.click(ui(on_search), [query_in, k_in, m_in], [table_out, hit_out], api_name="search")
            query_in.submit(ui(on_search), [query_in, k_in, m_in], [table_out, hit_out], api_name=False)
            like_btn.click(ui(on_similar), [like_in, k_in, m_in], [table_out, hit_out], api_name="similar")
            table_out.select(ui(on_select), [table_out], [hit_out], api_name=False)
    return demo
