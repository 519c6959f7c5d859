"""How numbers read on the user's screen, the same in the start banner, the end summary and the plots' axes."""

from __future__ import annotations


def human(count: float) -> str:
    """1234 -> "1.23K", 124_439_808 -> "124.4M" (three significant digits, at least one decimal below 1000)."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(count) >= scale:
            value = count / scale
            return f"{value:.3g}{unit}" if value < 100 else f"{value:.1f}{unit}"
    return f"{count:g}"


def duration(seconds: float) -> str:
    """3725.4 -> "1h 02m 05s", 65 -> "1m 05s", 5 -> "5s"."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
