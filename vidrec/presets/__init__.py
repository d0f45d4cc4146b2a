"""Built-in configs shipped inside the package (referenced as ``_base_: preset:<name>``)."""

from pathlib import Path

PRESETS_DIR = Path(__file__).parent


def preset_path(name: str) -> Path:
    return PRESETS_DIR / f"{name}.yaml"
