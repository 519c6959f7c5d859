"""Progress of the data commands on stderr: a rich bar on a terminal, plain lines in a batch job's log."""

from __future__ import annotations

import sys


def progress_bar(unit_label: str):
    """A rich progress bar with documents/s and tokens/s; silent when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


class PackingProgress:
    """Packing progress: a rich bar on a terminal; otherwise (a batch job's log) a plain line on stderr every
    MODALITIES_PROGRESS_SECONDS (default 30) seconds, so a log shows documents/s, tokens/s and an ETA too."""

    def __init__(self, description: str):
        import os
        import time

        self.description, self.total = description, None
        self.began = self.last_line = time.perf_counter()
        try:
            self.every = float(os.environ.get("MODALITIES_PROGRESS_SECONDS", "30"))
        except ValueError:
            self.every = 30.0
        # rich only for a terminal: a batch job's log does not wait for its import
        self.plain = not sys.stderr.isatty()
        self.bar = None if self.plain else progress_bar("documents")

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
            self.task = self.bar.add_task(self.description, total=None, rate="")
        return self

    def start(self, total: int) -> None:
        self.total = total
        if self.bar is not None:
            self.bar.update(self.task, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def update(self, documents: int, tokens: int) -> None:
        import time

        now = time.perf_counter()
        speed = rates(documents, tokens, now - self.began)
        if not self.plain:
            self.bar.update(self.task, completed=documents, rate=speed)
            return
        if now - self.last_line < self.every:
            return
        self.last_line = now
        line = f"{self.description}: {documents:,}"
        if self.total:
            line += f"/{self.total:,} documents ({100 * documents / self.total:.0f}%), {speed}"
            if documents:
                line += f", ETA {_clock((self.total - documents) * (now - self.began) / documents)}"
        else:
            line += f" documents, {speed}"
        print(line, file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    """3725.4 -> "1:02:05"."""
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def rates(documents: int, tokens: int | None, seconds: float) -> str:
    seconds = max(seconds, 1e-9)
    text = f"{documents / seconds:,.0f} documents/s"
    if tokens is not None:
        text += f", {tokens / seconds:,.0f} tokens/s"
    return text
