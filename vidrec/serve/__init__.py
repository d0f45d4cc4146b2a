"""The web demo (``vidrec serve``): classify an uploaded video, search a library with text.

    from vidrec.serve import build_app
    build_app(checkpoint="runs/demo/cnn_rnn/checkpoints/best", store="store/").launch()

The handlers (:func:`classify`, :func:`text_search`, ...) need no gradio; :func:`build_app` imports
it (``pip install 'vidrec[serve]'``).
"""

from vidrec.serve.app import (
    Resources,
    SearchRow,
    ServeError,
    build_app,
    classify,
    launch_app,
    load_resources,
    render_hit,
    render_prediction,
    render_upload,
    require_gradio,
    text_search,
    video_search,
)

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
