"""Every component the reference registers (0.5.0 and its main branch) exists here under the same keys, so no
config of its fails on an unknown component_key/variant_key. The list is read from the reference's registry
(tests/compat/expected/reference_components.json), not from ours."""

import json
from pathlib import Path

from modalities.registry import default_registry

EXPECTED = Path(__file__).parent / "expected" / "reference_components.json"


def test_every_reference_component_is_registered():
    names = json.loads(EXPECTED.read_text())["components"]
    assert len(names) == 94  # by count of the reference's ComponentEntity rows (0.5.0 and main together)
    registry = default_registry()
    missing = [name for name in names if registry.get(*name.split("/", 1)) is None]
    assert missing == []
