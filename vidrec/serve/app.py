"""The web demo behind ``vidrec serve``: classify an uploaded video, search a library with text.

The logic lives in plain functions that need no gradio (:func:`load_resources`, :func:`classify`,
:func:`text_search`, :func:`video_search`, :func:`render_upload`, :func:`render_prediction`,
:func:`render_hit`), so they are tested directly; :func:`build_app` only wires them to gradio
components. The model and the store (with its encoder) are loaded once, by :func:`load_resources`.

::

    upload ─▶ render_upload (playable preview) ─▶ classify(predictor) ─▶ gr.Label (+ optional overlay)
    text   ─▶ text_search(store) ─▶ SearchRow per video ─▶ table + the best hit's best moment
                                          │ kept per session, on the server (gr.State)
    click on row i ─▶ the i-th row this session was issued ─▶ render_hit ─▶ video

The server never takes a path or a time window from the client: a click on the results table
sends only a row number, which picks one of the rows the server issued to that session (anything
else is refused with a message that names no file). Uploads are checked by gradio to lie in its
own upload folder, limited in size (:data:`DEFAULT_MAX_UPLOAD_MB`), and deleted with the
previews when the server closes. Preview videos are re-encoded (H.264 mp4, short side 256 px), so
the browser plays them whatever the library's containers are and no library folder is exposed.
"""

# No ``from __future__ import annotations`` here: gradio reads the handler annotations
# (``gr.SelectData``) at wiring time, and ``gr`` is a local name inside build_app.

import atexit
import functools
import html
import logging
import math
import os
import re
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

    from vidrec.embed.search import Hit
    from vidrec.embed.store import Store
    from vidrec.engine.predict import Predictor

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'vidrec[serve]'"
DEVICES = ("auto", "cpu", "cuda", "mps")
PREVIEW_SHORT_SIDE = 256  # preview videos are decoded straight to this short side (px), down or up
PREVIEW_MAX_FRAMES = 240  # longer spans are subsampled (playback keeps real time)
MOMENT_CONTEXT_S = 1.0  # seconds shown before and after a moment
KEEP_PREVIEWS = 32  # preview files kept on disk (gradio copies what it serves into its own cache)
DEFAULT_MAX_UPLOAD_MB = 500  # uploads above this are refused by the server (``vidrec serve --max-upload-mb``)
CACHE_SWEEP_S = 3600  # gradio deletes this app's uploads and previews older than this every as often, and all on close
VIDEO_HEIGHT = 280  # px: videos are shown at most this tall, so a small upload does not push the buttons away
TABLE_HEADERS = ["#", "score", "video", "best moment (s)", "more moments (s)"]
TABLE_TYPES = ["number", "str", "html", "str", "str"]
TABLE_WIDTHS = ["7%", "13%", "32%", "20%", "28%"]
VIDEO_FORMATS = "mp4, webm, avi, mkv, mov, ..."

PathLike = str | Path


class ServeError(VidrecError):
    """The demo was started without what a tab needs, or a request is incomplete or not one it issued."""


def fmt_score(score: float) -> str:
    """A cosine score as the page (and ``vidrec search``) prints it."""
    return f"{score:.4f}"


def fmt_span(start_s: float, end_s: float) -> str:
    """A moment as the page prints it, in seconds."""
    return f"{start_s:.2f}–{end_s:.2f}"


def display_name(path: PathLike, root: Path | None) -> str:
    """``path`` relative to ``root`` (the store's common folder); its file name if it lies elsewhere."""
    p = Path(path)
    if root is not None:
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            pass
    return p.name


def _tip(text: str, full: str) -> str:
    """``text`` as HTML with ``full`` in its tooltip (the only place a full server path is shown)."""
    return f'<span title="{html.escape(full, quote=True)}">{html.escape(text)}</span>'


@dataclass
class SearchRow:
    """One search result: a stored video, its cosine score and its best moments (best first)."""

    rank: int
    path: str
    score: float
    moments: list[tuple[float, float, float]] = field(default_factory=list)  # (start_s, end_s, score)

    def table_row(self, root: Path | None = None) -> list[Any]:
        """The row shown in the results table (columns :data:`TABLE_HEADERS`); the video by its name
        relative to ``root``, the full path in a tooltip."""
        best = fmt_span(*self.moments[0][:2]) if self.moments else ""
        more = ", ".join(fmt_span(a, b) for a, b, _ in self.moments[1:])
        return [self.rank, fmt_score(self.score), _tip(display_name(self.path, root), self.path), best, more]

    def caption(self, root: Path | None = None) -> str:
        """What the player above the hit's preview says it shows."""
        name = display_name(self.path, root)
        if not self.moments:
            return f"#{self.rank} {name}: the whole video (no moments asked)"
        span = fmt_span(*self.moments[0][:2])
        return f"#{self.rank} {name}: best moment {span} s, with {MOMENT_CONTEXT_S:g} s around it"


def store_root(store: "Store") -> Path | None:
    """The deepest folder holding every video of ``store`` (names in the page are relative to it)."""
    paths = list(store.known())
    if not paths:
        return None
    common = Path(os.path.commonpath(paths))
    return common.parent if len(paths) == 1 or common.as_posix() in paths else common


@dataclass
class Resources:
    """What the demo loads once at startup: a predictor (Classify tab) and/or a store (Search tab)."""

    predictor: Optional["Predictor"] = None
    store: Optional["Store"] = None
    preview_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vidrec-serve-")))
    store_root: Path | None = None  # the store's common folder; computed from the store when not given

    def __post_init__(self) -> None:
        atexit.register(shutil.rmtree, self.preview_dir, True)
        if self.store is not None and self.store_root is None:
            self.store_root = store_root(self.store)

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
    from vidrec.utils.device import resolve_device

    predictor = None
    if checkpoint is not None:
        from vidrec.engine.predict import Predictor

        onnx = Path(checkpoint).suffix.lower() == ".onnx"  # an exported file: onnxruntime, on the CPU
        predictor = Predictor(Path(checkpoint), device="cpu" if onnx else str(resolve_device(device)), views=views)
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
        raise ServeError(f"no video uploaded: drop a video file ({VIDEO_FORMATS}) into the box first")
    path = Path(video_path)
    if not path.is_file():
        raise VideoError(f"{path.name}: the upload is gone from the server; upload the video again")
    return path


_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")


def _page_error(exc: VideoError, path: Path, shown: str) -> VideoError:
    """One line for the page about a video it could not read: ``shown`` (a name, never the server
    folder), the reason without errno numbers or paths, and what to do."""
    cause = exc.__cause__
    reason = str(getattr(cause, "strerror", None) or "")  # PyAV's errors: "Invalid data found when processing input"
    if not reason:
        text = str(exc).replace(str(path), shown)
        reason = text[len(shown) + 2 :] if text.startswith(shown + ": ") else text
        reason = re.split(r" \(|\. |\.$", reason, maxsplit=1)[0]  # the first clause: what is wrong, not the CLI's fix
    reason = _ERRNO.sub("", reason).replace(str(path), shown).strip().rstrip(".") or "unknown reason"
    return VideoError(f"{shown}: not a video vidrec can read ({reason}); upload a video file ({VIDEO_FORMATS})")


@contextmanager
def _named(path: Path, shown: str | None = None) -> Iterator[None]:
    """Video errors name the file as the user knows it (``shown``, by default the uploaded file's
    name), never the folder it lies in on the server (``/tmp/gradio/<hash>/``)."""
    try:
        yield
    except VideoError as exc:
        raise _page_error(exc, path, shown or path.name) from None
    except VidrecError as exc:  # another library error that names the file: the name only, no errno noise
        if str(path) not in str(exc):
            raise
        raise type(exc)(_ERRNO.sub("", str(exc)).replace(str(path), shown or path.name)) from None


def _probe(path: Path) -> None:
    """Decode the first frame of an upload, so a file that is not a video gets the page's message."""
    from vidrec.video.decode import AutoDecoder

    decoder = AutoDecoder()
    if decoder.info(path).num_frames <= 0:
        raise VideoError(f"{path}: the video has no frames")
    decoder.decode(path, [0])


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
    return [
        SearchRow(i + 1, h.path, h.score, [(m.start_s, m.end_s, m.score) for m in h.moments])
        for i, h in enumerate(hits)
    ]


def _need_store(store: Optional["Store"]) -> "Store":
    if store is None:
        raise ServeError("the Search tab needs a store: start vidrec serve with --store DIR (built by vidrec embed)")
    return store


def text_search(
    store: Optional["Store"], query: str | None, *, k: int = 5, moments: int = 3, encoder: Any = None
) -> list[SearchRow]:
    """Videos of ``store`` that best match a sentence, with their best moments.

    ``encoder`` embeds the query; by default the store's own (the one that built it)."""
    from vidrec.embed.search import check_queries, search

    st = _need_store(store)
    text = check_queries([query if query is not None else ""])[0]
    if encoder is not None:
        vec = encoder.encode_text([text])[0].float().cpu().numpy()
        return _rows(search(st, vec, k=int(k), moments=int(moments)))
    return _rows(search(st, text, k=int(k), moments=int(moments)))


def video_search(
    store: Optional["Store"], video_path: PathLike | None, *, k: int = 5, moments: int = 3
) -> list[SearchRow]:
    """Videos of ``store`` most like an uploaded one, as ``vidrec search --video``: a video the store
    holds (the same bytes) is left out of its own results; another is embedded by the store's encoder."""
    from vidrec.embed.search import search_by_video

    st = _need_store(store)
    path = _uploaded(video_path)
    with _named(path):
        _probe(path)
        return _rows(search_by_video(st, path, k=int(k), moments=int(moments)))


# ---------------------------------------------------------------------------------------------- previews
def _preview_frames(
    path: Path, start_s: float = 0.0, end_s: float | None = None
) -> tuple[np.ndarray, list[int], float, float]:
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


def render_upload(video_path: PathLike, out: PathLike) -> Path:
    """The uploaded video, small (at most PREVIEW_MAX_FRAMES frames, H.264), as ``out``: the page shows
    this rather than the upload, so any container vidrec reads plays, and a bad file is caught at once."""
    from vidrec.video.encode import write_video

    path = _uploaded(video_path)
    with _named(path):
        frames, _, _, fps = _preview_frames(path)
    return write_video(out, frames, fps=fps)


def render_prediction(video_path: PathLike, topk: Sequence[tuple[str, float]], out: PathLike) -> Path:
    """The uploaded video (small, at most PREVIEW_MAX_FRAMES frames) with the top-3 classes drawn on it, as ``out``."""
    from vidrec.report.visualize import render_clip
    from vidrec.video.encode import write_video

    path = _uploaded(video_path)
    with _named(path):
        frames, indices, _, fps = _preview_frames(path)
    drawn = render_clip(
        frames, topk=topk, frame_indices=indices, min_size=min(frames.shape[1:3]), at_bottom=True
    )  # clear of the label
    return write_video(out, drawn, fps=fps)


def render_hit(row: SearchRow, out: PathLike, *, context_s: float = MOMENT_CONTEXT_S, root: Path | None = None) -> Path:
    """The hit's best moment with ``context_s`` around it (the whole video without moments), captioned
    at the bottom (the player's label covers the top), as ``out``. Errors name the video relative to ``root``."""
    from vidrec.report.visualize import draw_frame
    from vidrec.video.encode import write_video

    path = Path(row.path)
    shown = display_name(path, root) if root is not None else str(path)
    if not path.is_file():
        raise VideoError(
            f"{shown}: the stored video is gone (moved or deleted since vidrec embed); embed the library again"
        )
    caption = f"#{row.rank}  score {fmt_score(row.score)}"
    start, end = (row.moments[0][0], row.moments[0][1]) if row.moments else (0.0, None)
    with _named(path, shown):
        if end is None:
            frames, indices, video_fps, fps = _preview_frames(path)
        else:
            frames, indices, video_fps, fps = _preview_frames(path, max(0.0, start - context_s), end + context_s)
    # the drawn caption uses a hyphen: the font has no en dash
    moment = "" if end is None else f"best moment {fmt_span(start, end).replace('–', '-')} s"
    drawn = []
    for frame, i in zip(frames, indices):
        t = i / video_fps
        inside = end is not None and start <= t < max(end, start + 1.0 / video_fps)
        lines = [caption, moment if inside else f"{t:.2f} s"]
        drawn.append(draw_frame(frame, lines=lines, at_bottom=True))
    return write_video(out, np.stack(drawn), fps=fps)


# ---------------------------------------------------------------------------------------------- gradio
def require_gradio() -> Any:
    try:
        import gradio
    except ImportError as exc:
        raise VidrecError(f"the web demo needs gradio, which is not installed ({exc}): {INSTALL_HINT}") from exc
    return gradio


def _short_path(path: PathLike, parts: int = 3) -> str:
    return Path(*Path(path).parts[-parts:]).as_posix()


def _short_source(source: str) -> str:
    """An encoder's recorded source without the server folder: ``dir:/a/b/clip@hash`` → ``clip``."""
    kind, _, rest = source.partition(":")
    if kind in ("dir", "checkpoint") and rest:
        return _short_path(rest.rsplit("@", 1)[0], 1 if kind == "dir" else 3)
    return rest or source


def build_app(
    checkpoint: PathLike | None = None,
    store: PathLike | None = None,
    *,
    device: str = "auto",
    views: int | None = None,
    topk: int = 5,
    k: int = 5,
    moments: int = 3,
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB,
    resources: Resources | None = None,
) -> "gradio.Blocks":
    """A gradio ``Blocks`` with a Classify tab (``checkpoint``) and a Search tab (``store``); not launched
    (:func:`launch_app` launches it with the upload limit and cache cleaning).

    ``resources`` (from :func:`load_resources`) skips loading. Errors a user causes show in the page."""
    if resources is None and checkpoint is None and store is None:
        load_resources(None, None)  # raises the "nothing to serve" error before gradio is imported
    gr = require_gradio()
    res = resources or load_resources(checkpoint, store, device=device, views=views)
    root = res.store_root

    def ui(fn: Any) -> Any:
        """VidrecError → gr.Error, whose message the page shows (once, as a toast)."""

        @functools.wraps(fn)
        def wrapper(*args: Any) -> Any:
            try:
                return fn(*args)
            except VidrecError as exc:  # the user's mistake: shown in the page, one log line, no traceback
                log.info("request refused: %s", exc)
                raise gr.Error(str(exc), print_exception=False) from None

        return wrapper

    def on_upload(video: str | None) -> Any:
        if not video:
            return None
        return str(render_upload(video, res.preview_path(Path(video).stem)))

    def on_classify(video: str | None, top: float, overlay: bool) -> tuple[dict[str, float], str | None]:
        top_k = classify(res.predictor, video, int(top))
        preview = None
        if overlay:
            out = res.preview_path(Path(str(video)).stem)
            preview = str(render_prediction(video, top_k, out))  # type: ignore[arg-type]
        return dict(top_k), preview

    def _hit_video(row: SearchRow) -> Any:
        clip = render_hit(row, res.preview_path(Path(row.path).stem), root=root)
        return gr.update(
            value=str(clip), label=row.caption(root)
        )  # (a gr.Video here would copy it outside the cache's bookkeeping)

    def _results(rows: list[SearchRow], what: str) -> tuple[Any, ...]:
        """Table, best hit, the rows issued to this session (server-side state), status line."""
        best = _hit_video(rows[0]) if rows else gr.update(value=None, label="best hit")
        found = f"{len(rows)} video{'s' * (len(rows) != 1)}"
        status = f"{found} {what}; scores are cosine similarities. Click a row to play that hit."
        return [r.table_row(root) for r in rows], best, rows, status

    def on_search(query: str, n: float, m: float) -> tuple[Any, ...]:
        rows = text_search(res.store, query, k=int(n), moments=int(m))
        return _results(rows, f"for “{html.escape(str(query).strip())}”")

    def on_similar(video: str | None, n: float, m: float) -> tuple[Any, ...]:
        from vidrec.embed.search import stored_copy

        rows = video_search(res.store, video, k=int(n), moments=int(m))
        name = Path(str(video)).name
        stored = stored_copy(res.store, video) if res.store is not None and video else None
        what = f"like {html.escape(name)}"
        if stored is not None:
            held = html.escape(display_name(stored, root))
            what += f" (the store holds it as {held}, so it is left out of its own results)"
        return _results(rows, what)

    # gr is the gradio module, imported when the app is built; gradio reads this annotation to pass the event.
    def on_select(issued: list[SearchRow], evt: gr.SelectData) -> Any:  # type: ignore[name-defined]
        # Only the row number comes from the client; the row itself is one this session was issued.
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) and evt.index else evt.index
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(issued or []):
            raise ServeError("that row is not one of the results on this page; search again")
        return _hit_video(issued[index])

    classes = res.classes
    limit = f"up to {max_upload_mb} MB" if max_upload_mb else "any size"
    with gr.Blocks(title="vidrec", analytics_enabled=False, delete_cache=(CACHE_SWEEP_S, CACHE_SWEEP_S)) as demo:
        gr.Markdown(
            "# vidrec\nClassify a video with a trained checkpoint, or search a library of videos with a sentence."
        )
        with gr.Tab("Classify"):
            if res.predictor is None:
                gr.Markdown("No model loaded: start `vidrec serve --checkpoint DIR` to classify videos.")
            else:
                ck = res.predictor.ck
                gr.HTML(
                    f"Model <code>{html.escape(ck.cfg.model.name)}</code> from "
                    f"<code>{_tip(_short_path(ck.path), str(Path(ck.path).resolve()))}</code>, {len(classes)} classes.",
                    elem_id="classify-header",
                )
            with gr.Row(equal_height=False):
                with gr.Column():
                    video_in = gr.File(label=f"video ({VIDEO_FORMATS}; {limit})", height=110, elem_id="classify-upload")
                    seen_out = gr.Video(
                        label="uploaded video", interactive=False, height=VIDEO_HEIGHT, elem_id="classify-preview"
                    )
                    top_in = gr.Slider(
                        1, max(2, len(classes)), value=min(topk, max(2, len(classes))), step=1, label="top-k classes"
                    )
                    overlay_in = gr.Checkbox(value=False, label="also draw the top-3 on the video (slower)")
                    classify_btn = gr.Button("Classify", variant="primary", elem_id="classify-button")
                with gr.Column():
                    label_out = gr.Label(
                        num_top_classes=max(1, len(classes)), label="classes", elem_id="classify-label"
                    )
                    overlay_out = gr.Video(
                        label="prediction drawn on the video",
                        interactive=False,
                        height=VIDEO_HEIGHT,
                        elem_id="classify-overlay",
                    )
            video_in.upload(ui(on_upload), [video_in], [seen_out], api_visibility="private", show_progress="minimal")
            video_in.clear(lambda: None, None, [seen_out], api_visibility="private")
            classify_btn.click(
                ui(on_classify),
                [video_in, top_in, overlay_in],
                [label_out, overlay_out],
                api_name="classify",
                show_progress="minimal",
                show_progress_on=[label_out],
            )
        with gr.Tab("Search"):
            if res.store is None:
                gr.Markdown(
                    "No store loaded: start `vidrec serve --store DIR` (built by `vidrec embed`) to search videos."
                )
            else:
                src = str(res.store.encoder_description.get("source", "?"))
                under = f" under <code>{_tip(root.name + '/', str(root))}</code>" if root is not None else ""
                gr.HTML(
                    f"Store <code>{_tip(res.store.path.name, str(res.store.path.resolve()))}</code>: "
                    f"{res.store.count()} videos{under}, encoder <code>{_tip(_short_source(src), src)}</code>.",
                    elem_id="search-header",
                )
            with gr.Row():
                query_in = gr.Textbox(
                    label="describe what happens",
                    placeholder="a person pours water into a cup",
                    scale=4,
                    elem_id="search-query",
                )
                search_btn = gr.Button("Search", variant="primary", scale=1, elem_id="search-button")
            with gr.Row():
                k_in = gr.Slider(1, 50, value=k, step=1, label="videos", elem_id="search-count")
                m_in = gr.Slider(0, 10, value=moments, step=1, label="moments per video", elem_id="search-moments")
            with gr.Accordion("or find videos like an uploaded one", open=False, elem_id="similar-accordion"):
                gr.Markdown(
                    "As `vidrec search --video` does, a video the store already holds (the same file) is "
                    "left out of its own results; any other video is embedded by the store's encoder."
                )
                with gr.Row(equal_height=False):
                    like_in = gr.File(
                        label=f"video ({VIDEO_FORMATS}; {limit})", height=110, scale=4, elem_id="similar-upload"
                    )
                    like_btn = gr.Button("Find similar videos", scale=1, elem_id="similar-button")
            with gr.Row(equal_height=True):
                status_out = gr.Markdown(elem_id="search-status", scale=6)
                busy = gr.HTML(
                    "", elem_id="search-busy", min_height=36, scale=1, min_width=100
                )  # progress and errors are marked here
            with gr.Row(equal_height=False):
                table_out = gr.Dataframe(
                    headers=TABLE_HEADERS,
                    datatype=TABLE_TYPES,
                    column_widths=TABLE_WIDTHS,
                    wrap=True,
                    type="array",
                    interactive=False,
                    label="results",
                    scale=3,
                    min_width=560,
                    elem_id="search-results",
                )
                hit_out = gr.Video(
                    label="best hit", interactive=False, height=VIDEO_HEIGHT, scale=2, elem_id="search-hit"
                )
            issued = gr.State([])  # the rows shown, per session, on the server: what a click may play
            outputs = [table_out, hit_out, issued, status_out]
            # a failed search leaves the previous results in place: its error shows as one message, and
            # the progress (and error) marker is drawn beside the status line, not over the table
            search_btn.click(ui(on_search), [query_in, k_in, m_in], outputs, api_name="search", show_progress_on=[busy])
            query_in.submit(
                ui(on_search), [query_in, k_in, m_in], outputs, api_visibility="private", show_progress_on=[busy]
            )
            like_btn.click(ui(on_similar), [like_in, k_in, m_in], outputs, api_name="similar", show_progress_on=[busy])
            table_out.select(ui(on_select), [issued], [hit_out], api_visibility="private")
    demo.vidrec_max_upload_mb = max_upload_mb  # read by launch_app
    return demo


def launch_app(
    demo: "gradio.Blocks", *, host: str = "127.0.0.1", port: int = 7860, share: bool = False
) -> tuple[str, str | None]:
    """Start ``demo`` in a background thread with the upload limit :func:`build_app` was given;
    returns ``(local_url, share_url)``. ``demo.close()`` stops it and deletes its uploads and previews."""
    mb = getattr(demo, "vidrec_max_upload_mb", DEFAULT_MAX_UPLOAD_MB)
    try:
        _, local_url, share_url = demo.queue().launch(
            server_name=host,
            server_port=port,
            share=share,
            show_error=True,
            quiet=True,
            prevent_thread_lock=True,
            max_file_size=f"{int(mb)}mb" if mb else None,
        )
    except OSError as exc:
        raise VidrecError(
            f"--host {host} --port {port}: cannot listen there ({str(exc).split('. ')[0]}); choose another --port"
        ) from exc
    return local_url, share_url
