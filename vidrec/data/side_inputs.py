"""The registry of side inputs (hand boxes, object boxes, hand joints, ...) a model may ask for by batch key.

Kept apart from :mod:`vidrec.data.build` (the DataLoader wiring, which imports torch) so that a
data module can register its factory at import time without making its import heavy: the
Something-Else loader imports :mod:`vidrec.data.boxes`, and ``vidrec data show`` imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from vidrec.config import Config
    from vidrec.data.dataset import SideInput
    from vidrec.data.records import RecordSet
    from vidrec.models.base import InputSpec

# batch key a model asks for -> factory(cfg, the model's input spec, recordset) -> SideInput
SideInputFactory = Callable[["Config", "InputSpec", "RecordSet | None"], "SideInput"]
SIDE_INPUTS: dict[str, SideInputFactory] = {}


def register_side_input(*keys: str) -> Callable[[SideInputFactory], SideInputFactory]:
    """Register a factory that provides the batch ``keys`` (e.g. ``hand_boxes``) for models that ask."""

    def deco(fn: Any) -> Any:
        for k in keys:
            SIDE_INPUTS[k] = fn
        return fn

    return deco
