"""Helpers of the compatibility tests: where the test data is, and building components from YAML as users do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
EXPECTED = HERE / "expected"
REFERENCE_CONFIGS = HERE / "reference_configs"


def expected(name: str) -> dict:
    return json.loads((EXPECTED / name).read_text())


def build(config_path: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Every top-level component of a config, built through the public API (YAML, --set style overrides)."""
    from modalities import Main

    return Main(config_path=config_path, overrides=list(overrides)).build_components()


def fingerprint(state_dict: dict) -> dict:
    """Per tensor: shape, float64 sum and sum of squares, first three values (as the expected files hold)."""
    result = {}
    for key, value in state_dict.items():
        tensor = value.detach().double()
        result[key] = {
            "shape": list(value.shape),
            "sum": tensor.sum().item(),
            "sumsq": (tensor * tensor).sum().item(),
            "first": value.detach().flatten()[:3].tolist(),
        }
    return result
