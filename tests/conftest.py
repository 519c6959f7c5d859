import os

# Tiny models on a 2-core machine run fastest single-threaded, and pytest-xdist already runs two workers;
# set before torch is imported anywhere (subprocesses such as torchrun workers inherit it).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _process_registry_is_left_as_found():
    """Each test gets its own copy of the process-wide registry: what a test registers (a plugin imported
    in-process, `register_component`) cannot leak into another test, whatever order xdist runs them in."""
    import modalities.registry as registry_module

    saved = registry_module.default_registry()
    registry_module._default = saved.copy()
    yield
    registry_module._default = saved
