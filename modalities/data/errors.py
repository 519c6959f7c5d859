"""Errors of the data pipeline. Each message names the file (and line or record) and says what to do."""

from __future__ import annotations


class DataError(Exception):
    """Bad input data: a file that is missing, malformed, truncated or not what the config says."""
