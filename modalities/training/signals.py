"""Stopping a run the way clusters stop it: SIGTERM (SLURM preemption, scancel; torchrun forwards it), SIGUSR1
(SLURM's warning before the time limit, ``--signal=USR1@90``) and SIGINT (Ctrl-C).

The first such signal only asks the run to stop: the current step is finished, all ranks agree on it (the flag
travels with the step's loss reduction, so no rank stops a step earlier than another), a checkpoint of that step
is written, and the process exits with EXIT_STOPPED. The same signal often arrives twice at once (a terminal
sends Ctrl-C to torchrun and to its workers, and torchrun forwards it again), so repeats within REPEAT_WINDOW_S
are the same request; a signal after that stops the process at once (for a save that hangs).
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType

# EX_TEMPFAIL: "a temporary failure; the user is invited to retry". The run saved a checkpoint of the step it
# reached; rerun the same command with --resume auto to continue.
EXIT_STOPPED = 75
REPEAT_WINDOW_S = 2.0
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1", "SIGHUP") if hasattr(signal, name)
)


class TrainingStopped(Exception):
    """Raised by the training loop after it stopped on a signal (and saved a checkpoint)."""

    def __init__(self, signal_name: str, step: int, checkpoint: str | None):
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        saved = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (no checkpoint_saving configured)"
        super().__init__(f"stopped by {signal_name} after step {step}; saved {saved}")


class StopSignals:
    """A context that turns stop signals into a request the training loop polls (``requested``)."""

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS):
        self.signals = signals
        self.requested: str | None = None
        self._first_at = 0.0
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        now = time.monotonic()
        if self.requested is None:
            self.requested, self._first_at = name, now
            print(
                f"modalities: {name} received; finishing this step and saving a checkpoint "
                f"(send it again after {REPEAT_WINDOW_S:.0f} s to stop at once)",
                file=sys.stderr,
                flush=True,
            )
            return
        if now - self._first_at < REPEAT_WINDOW_S:
            return  # the same request, delivered twice
        self.restore()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def __enter__(self) -> "StopSignals":
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread; the process keeps its defaults
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def __exit__(self, *exc) -> None:
        self.restore()
