"""Library warnings that say nothing a user can act on are filtered where they arise and kept in the log at
debug level (logger ``modalities.logging.library_warnings``), so that the first screen of a run is ours. Every other
warning raised inside is shown as before.

Each filtered warning is named here with why it says nothing to the user.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator

LOG = logging.getLogger(__name__)

# torch warns whenever a random op (an initializer's normal_) runs on a DTensor of a CPU mesh: the draws are
# correct (the model initializer seeds and orders them itself, see models/initialization/composed.py), and a CPU
# run is a development run that cannot move to another device to please it.
DTENSOR_RANDOM_ON_CPU = "DTensor random operators may not have complete support on cpu device mesh"


@contextlib.contextmanager
def library_warnings_to_debug_log(*messages: str, category: type[Warning] = UserWarning) -> Iterator[None]:
    """Inside: a warning of ``category`` whose text starts with one of ``messages`` goes to the debug log, not
    to stderr (also under ``-W error``); any other warning is shown (or raised) as it would be without this."""
    with warnings.catch_warnings(record=True) as caught:
        for message in messages:
            warnings.filterwarnings("always", message=re.escape(message), category=category)
        yield
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, category) and text.startswith(messages):
            LOG.debug("%s:%s: %s: %s", warning.filename, warning.lineno, warning.category.__name__, text)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno,
                                   source=warning.source)
