"""Model zoo: every model is registered by name and built by :func:`create_model`."""

from vidrec.models.registry import PretrainedCfg, create_model, get_model_entry, list_models, register_model

__all__ = ["PretrainedCfg", "create_model", "get_model_entry", "list_models", "register_model"]
