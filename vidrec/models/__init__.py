"""Model zoo: every model is registered by name and built by :func:`build_model`."""

from vidrec.models.registry import build_model, get_model_entry, list_models, register_model

__all__ = ["build_model", "get_model_entry", "list_models", "register_model"]
