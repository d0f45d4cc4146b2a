"""Video embeddings and search: ``extract`` a folder into a :class:`Store`, then ``search`` it.

from vidrec.embed import Store, extract
from vidrec.embed.search import search
summary = extract("videos/", "store/", model="clip-vit-b32/")
for hit in search(Store("store/"), "a person pours water into a cup", k=5):
    print(hit.path, hit.score, [(m.start_s, m.end_s) for m in hit.moments])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vidrec.embed.encoders import Encoder, EncoderError, load_encoder
    from vidrec.embed.extract import EmbedSummary, extract
    from vidrec.embed.search import Hit, Moment, QueryError, search_by_video
    from vidrec.embed.store import EncoderMismatch, Store, StoreError

# Imported on first use (PEP 562): opening a store or checking a query must not import torch,
# which only the encoders and the extractor need.
_EXPORTS = {
    "Encoder": "encoders",
    "EncoderError": "encoders",
    "load_encoder": "encoders",
    "EmbedSummary": "extract",
    "extract": "extract",
    "QueryError": "search",
    "Hit": "search",
    "Moment": "search",
    "search_by_video": "search",
    "EncoderMismatch": "store",
    "Store": "store",
    "StoreError": "store",
}
# The query function is ``vidrec.embed.search.search``: the submodule's own name, so it is not re-exported here.
__all__ = [
    "extract",
    "search_by_video",
    "Store",
    "EmbedSummary",
    "Hit",
    "Moment",
    "Encoder",
    "load_encoder",
    "StoreError",
    "EncoderMismatch",
    "EncoderError",
    "QueryError",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
