from __future__ import annotations

import json
from pathlib import Path

import pytest

from modalities.registry import Registry, default_registry
from modalities.schema.json_schema import DOCUMENT_SCHEMA_NAME, generate_document_schema, write_schemas
from tests.schema.plugins.toy_configs import register as register_toy_components

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def single_process_env(monkeypatch):
    """Configs read `${cuda_env:RANK}` and friends; compile them as the one process of a job."""
    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def toy_registry() -> Registry:
    """The built-in components plus those of the toy test plugin (the process-wide registry is left alone)."""
    registry = default_registry().copy()
    register_toy_components(registry)
    return registry


@pytest.fixture(scope="session")
def toy_document_schema(toy_registry) -> dict:
    return generate_document_schema(toy_registry)


@pytest.fixture(scope="session")
def toy_schema_dir(toy_registry, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("schemas")
    write_schemas(toy_registry, out)
    assert json.loads((out / DOCUMENT_SCHEMA_NAME).read_text())["$defs"]
    return out
