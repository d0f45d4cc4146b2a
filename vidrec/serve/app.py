"""The web demo behind ``vidrec serve``: classify an uploaded video, search a library with text.

The logic lives in plain functions that need no gradio (:mod:`vidrec.serve.handlers`: :func:`load_resources`,
:func:`classify`, :func:`text_search`, :func:`video_search`; :mod:`vidrec.serve.previews`:
:func:`render_upload`, :func:`render_prediction`, :func:`render_hit`), so they are tested directly; this
module's :func:`build_app` only wires them to gradio components. The model and the store (with its encoder)
are loaded once, by :func:`load_resources`.

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

import functools
import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidrec.errors import VidrecError
from vidrec.serve.handlers import (
    VIDEO_FORMATS,
    PathLike,
    Resources,
    SearchRow,
    ServeError,
    classify,
    display_name,
    html_tip,
    load_resources,
    text_search,
    video_search,
)
from vidrec.serve.previews import render_hit, render_prediction, render_upload

if TYPE_CHECKING:
    import gradio

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'vidrec[serve]'"
DEFAULT_MAX_UPLOAD_MB = 500  # uploads above this are refused by the server (``vidrec serve --max-upload-mb``)
CACHE_SWEEP_S = 3600  # gradio deletes this app's uploads and previews older than this every as often, and all on close
VIDEO_HEIGHT = 280  # px: videos are shown at most this tall, so a small upload does not push the buttons away
TABLE_HEADERS = ["#", "score", "video", "best moment (s)", "more moments (s)"]
TABLE_TYPES = ["number", "str", "html", "str", "str"]
TABLE_WIDTHS = ["7%", "13%", "32%", "20%", "28%"]

# Re-exported: the serve API, importable from here as before the handlers and previews had modules of their own.
__all__ = [
    "Resources",
    "SearchRow",
    "ServeError",
    "build_app",
    "classify",
    "launch_app",
    "load_resources",
    "render_hit",
    "render_prediction",
    "render_upload",
    "require_gradio",
    "text_search",
    "video_search",
]


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
                    f"<code>{html_tip(_short_path(ck.path), str(Path(ck.path).resolve()))}</code>, "
                    f"{len(classes)} classes.",
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
                under = f" under <code>{html_tip(root.name + '/', str(root))}</code>" if root is not None else ""
                gr.HTML(
                    f"Store <code>{html_tip(res.store.path.name, str(res.store.path.resolve()))}</code>: "
                    f"{res.store.count()} videos{under}, encoder <code>{html_tip(_short_source(src), src)}</code>.",
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
