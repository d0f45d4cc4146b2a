"""Errors a user can cause. The CLI prints their message (no traceback) and exits non-zero."""

from __future__ import annotations


class VidrecError(Exception):
    """Base class: a problem with the user's input, with a message that says what to do."""


class ConfigError(VidrecError):
    """A configuration key is unknown or its value is invalid."""


class VideoError(VidrecError):
    """A video file is missing, empty, truncated or not a video."""


class DatasetError(VidrecError):
    """An annotation or split file cannot be read or does not match the data."""


class CheckpointError(VidrecError):
    """A checkpoint directory is missing, incomplete or belongs to another model."""


class WeightsError(VidrecError):
    """Pretrained weights cannot be found or do not fit the model."""


class UnsafeFileError(WeightsError):
    """A file that would run code when loaded (a pickle of more than tensors and numbers) was refused."""
