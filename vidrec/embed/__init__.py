"""Video embeddings and search: ``extract`` a folder into a :class:`Store`, then ``Store(path).search``.

    from vidrec.embed import extract, Store
    summary = extract("videos/", "store/", model="clip-vit-b32/")
    for hit in Store("store/").search("a person pours water into a cup", k=5):
        print(hit.path, hit.score, [(m.start_s, m.end_s) for m in hit.moments])
"""

from vidrec.embed.encoders import Encoder, EncoderError, load_encoder
from vidrec.embed.extract import EmbedSummary, extract
from vidrec.embed.search import QueryError
from vidrec.embed.store import EncoderMismatch, Hit, Moment, Store, StoreError

__all__ = ["extract", "Store", "EmbedSummary", "Hit", "Moment", "Encoder", "load_encoder", "StoreError", "EncoderMismatch",
           "EncoderError", "QueryError"]
