import os

# Tiny models on a 2-core machine run fastest single-threaded, and pytest-xdist already runs two workers;
# set before torch is imported anywhere (subprocesses such as torchrun workers inherit it).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
from hypothesis import settings

# Property tests draw the same examples on every run (seeded from the test's name, as hypothesis does on CI), so
# a failure on CI is the failure on a laptop, and hypothesis prints the @reproduce_failure line that replays it.
# HYPOTHESIS_PROFILE=explore draws new examples each run, for a longer hunt.
settings.register_profile("modalities", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "modalities"))


@pytest.fixture(autouse=True)
def _process_registry_is_left_as_found():
    """Each test gets its own copy of the process-wide registry and resolver table: what a test registers (a
    plugin imported in-process, `register_component`, `additional_resolver_funs`) cannot leak into another test,
    whatever order xdist runs them in."""
    import modalities.config.resolve as resolve_module
    import modalities.registry as registry_module

    saved = registry_module.default_registry()
    registry_module._default = saved.copy()
    resolvers = dict(resolve_module._RESOLVERS)
    yield
    registry_module._default = saved
    resolve_module._RESOLVERS.clear()
    resolve_module._RESOLVERS.update(resolvers)


def pytest_collection_modifyitems(config, items):
    """Modules holding a `slow` test (multi-process and training runs, minutes each on 2 cores) run first, whole
    and in their own order, so that under xdist both workers share the long tests and the suite ends on short
    ones instead of one worker finishing a long run while the other waits (with `--dist worksteal`, as the
    README's command runs it, an idle worker also takes tests queued for the other)."""
    slow_files = {item.nodeid.partition("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.partition("::")[0] not in slow_files)
