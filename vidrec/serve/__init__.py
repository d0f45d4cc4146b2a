"""The web demo (``vidrec serve``): classify an uploaded video, search a library with text.

    from vidrec.serve import build_app
    build_app(checkpoint="runs/demo/cnn_rnn/checkpoints/best", store="store/").launch()

The handlers (:mod:`vidrec.serve.handlers`: :func:`classify`, :func:`text_search`, ...) and the previews
(:mod:`vidrec.serve.previews`) need no gradio; :func:`build_app` (:mod:`vidrec.serve.app`, the page) imports it
(``pip install 'vidrec[serve]'``).
"""

from vidrec.serve.app import build_app, launch_app, require_gradio
from vidrec.serve.handlers import Resources, SearchRow, ServeError, classify, load_resources, text_search, video_search
from vidrec.serve.previews import render_hit, render_prediction, render_upload

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
