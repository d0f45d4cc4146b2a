"""CLIP's two towers, loaded for :class:`~vidrec.models.video_clip.VideoCLIP`: transformers' ``CLIPModel``
from a ``from_pretrained`` directory or a hub id (:func:`load_clip`), or random-initialised from a config
(:func:`tiny_clip_config` for tests and demos), and a tokenizer for towers that ship none (:class:`HashTokenizer`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
import zlib
from pathlib import Path
from typing import Any, Sequence

import torch

from vidrec.errors import UnsafeFileError, WeightsError

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_HUB_ID = "openai/clip-vit-base-patch32"
# transformers' CLIPModel. Its towers are read by attribute (vision_model.encoder.layers, text_projection, ...), which
# nn.Module.__getattr__ types as Tensor | Module and whose classes differ between transformers releases: Any, named.
ClipModel = Any


# --------------------------------------------------------------------------------------------
# tokenizer fallback


class HashTokenizer:
    """A dependency-free tokenizer for CLIP towers that come without tokenizer files.

    Lower-cased words (``[a-z0-9]+``) map to ``1 + crc32(word) % (vocab_size - 3)``; BOS is
    ``vocab_size - 2`` and EOS ``vocab_size - 1`` (the highest id, as CLIP's text pooling expects),
    padding is 0. It is stable across runs and machines; it is *not* CLIP's BPE, so it is only
    meaningful for towers trained with it (random-initialised ones, tests, the synthetic demo).
    """

    def __init__(self, vocab_size: int, max_length: int = 77) -> None:
        if vocab_size < 8:
            raise ValueError("vocab_size must be at least 8")
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.bos, self.eos = vocab_size - 2, vocab_size - 1

    def encode(self, text: str) -> list[int]:
        words = re.findall(r"[a-z0-9]+", text.lower())
        ids = [1 + zlib.crc32(w.encode()) % (self.vocab_size - 3) for w in words]
        return [self.bos, *ids[: self.max_length - 2], self.eos]

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        rows = [self.encode(t) for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}


# --------------------------------------------------------------------------------------------
# loading CLIP


def tiny_clip_config(
    *, image_size: int = 32, patch_size: int = 8, hidden: int = 32, layers: int = 4, vocab_size: int = 1000
) -> Any:
    """A small random CLIP (tests, the synthetic demo); ViT shapes scaled down, same code path."""
    from transformers import CLIPConfig

    common = dict(
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 16),
    )
    return CLIPConfig(
        text_config=dict(
            common,
            vocab_size=vocab_size,
            max_position_embeddings=32,
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
        ),
        vision_config=dict(common, image_size=image_size, patch_size=patch_size),
        projection_dim=hidden,
    )


def _fingerprint_dir(path: Path) -> str:
    h = hashlib.sha1()
    for f in sorted(path.iterdir()):
        if f.is_file():
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
            if f.suffix == ".json" and f.stat().st_size < 1_000_000:
                h.update(f.read_bytes())
    return h.hexdigest()[:12]


def load_clip(source: str | Path) -> tuple[ClipModel, Any, str]:
    """``(CLIPModel, tokenizer, fingerprint)`` from a ``from_pretrained`` directory or a hub id.

    Offline, a hub id that is not in the local cache fails at once with :class:`WeightsError`
    telling what to pass instead.
    """
    from transformers import AutoTokenizer, CLIPModel

    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        raise WeightsError(f"{path}: a CLIP model is a from_pretrained directory (config.json + weights), not a file")
    if path.is_dir():
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise WeightsError(
                f"{path}: no config.json; not a transformers from_pretrained directory (nor a vidrec checkpoint)"
            )
        try:
            model_type = json.loads(cfg_file.read_text()).get("model_type")
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{cfg_file}: not valid JSON ({exc})") from exc
        if model_type != "clip":
            raise WeightsError(f"{path}: model_type is {model_type!r}; a CLIP directory (model_type 'clip') is needed")
        try:
            model: ClipModel = CLIPModel.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise WeightsError(f"{path}: cannot load the CLIP weights ({exc})") from exc
        except pickle.UnpicklingError as exc:  # transformers reads *.bin with weights_only=True and refused it
            from vidrec.utils.io import unpickle_refusal

            weights = next((path / n for n in ("pytorch_model.bin", "model.bin") if (path / n).is_file()), path)
            raise UnsafeFileError(unpickle_refusal(weights, exc)) from None
        fingerprint = f"dir:{path.resolve()}@{_fingerprint_dir(path)}"
        tokenizer: Any = None
        if (path / "tokenizer.json").is_file() or (path / "vocab.json").is_file():
            try:
                tokenizer = AutoTokenizer.from_pretrained(str(path))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("%s: unreadable tokenizer files (%s)", path, exc)
        if tokenizer is None:
            log.warning(
                "%s: no tokenizer files; using vidrec's HashTokenizer (meaningful only for towers trained with it)",
                path,
            )
            tokenizer = HashTokenizer(
                model.config.text_config.vocab_size, model.config.text_config.max_position_embeddings
            )
        return model, tokenizer, fingerprint
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise WeightsError(f"{text}: no such directory, and not a hub id of the form org/name (e.g. {DEFAULT_HUB_ID})")
    try:  # the local hub cache first: no network needed
        model = CLIPModel.from_pretrained(text, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(text, local_files_only=True)
    except (OSError, ValueError):
        from vidrec.models.weights import require_online

        require_online(f"hf:{text}", what="CLIP model")
        try:
            model = CLIPModel.from_pretrained(text)
            tokenizer = AutoTokenizer.from_pretrained(text)
        except (OSError, ValueError) as exc:
            raise WeightsError(
                f"{text}: cannot fetch the CLIP model ({exc}); pass a from_pretrained directory"
            ) from exc
    return model, tokenizer, f"hub:{text}"
