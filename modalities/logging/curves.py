"""Reading an experiment's ``results.jsonl`` back as curves (what ``modalities plot`` draws).

The file holds one JSON object per result (see subscribers.JSONLResultsWriter) and event lines where a run
continued in the same file: ``resume`` after step N drops the results of steps > N written before it (an
attempt that went on past its last checkpoint), ``restart`` drops everything before it. A line that is not
JSON (a run killed mid-write leaves a cut last line) is skipped and named in ``skipped``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from modalities.logging.results_file import RESTART_EVENT, RESULTS_FILE, RESUME_EVENT

TRAIN_LOSS = "train loss avg"


class ResultsFileError(ValueError):
    pass


@dataclass
class Series:
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, step: int, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)


@dataclass
class RunCurves:
    name: str  # the experiment id (the folder's name)
    path: Path  # the results file
    train_tag: str | None = None
    train: dict[str, Series] = field(default_factory=dict)  # metric -> series, of the training results
    evals: dict[str, dict[str, Series]] = field(default_factory=dict)  # loader tag -> metric -> series
    tokens_at_step: dict[int, int] = field(default_factory=dict)  # from the training results' consumed tokens
    skipped: list[str] = field(default_factory=list)

    def tokens_per_step(self) -> float | None:
        """Tokens per step if every training result agrees on it (the x axis can then be tokens too)."""
        ratios = {tokens / step for step, tokens in self.tokens_at_step.items() if step > 0}
        if not ratios:
            return None
        low, high = min(ratios), max(ratios)
        return low if high - low <= 1e-9 * high else None

    def tokens(self, step: int) -> float | None:
        if step in self.tokens_at_step:
            return float(self.tokens_at_step[step])
        rate = self.tokens_per_step()
        return step * rate if rate is not None else None


def results_file_of(path: str | Path) -> Path:
    """The results file of an experiment folder (or the file itself)."""
    candidate = Path(path)
    if candidate.is_dir():
        candidate = candidate / RESULTS_FILE
        if not candidate.is_file():
            raise ResultsFileError(
                f"{path}: no {RESULTS_FILE} in this folder; give an experiment folder (experiments/<experiment id>) "
                f"or a {RESULTS_FILE} file"
            )
    elif not candidate.is_file():
        raise ResultsFileError(f"{path}: no such file or folder")
    return candidate


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def read_results(path: str | Path) -> RunCurves:
    file = results_file_of(path)
    name = file.parent.name if file.name == RESULTS_FILE else file.stem
    records: list[tuple[int, dict]] = []
    skipped: list[str] = []
    try:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise ResultsFileError(f"{file}: cannot read it ({e.strerror or e})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            skipped.append(f"{file}:{number}: not a JSON line (cut off?), skipped")
            continue
        if not isinstance(record, dict):
            skipped.append(f"{file}:{number}: not a JSON object, skipped")
            continue
        step = record.get("num_train_steps_done")
        if isinstance(step, bool) or not isinstance(step, int):
            if "event" not in record:
                skipped.append(f"{file}:{number}: no integer num_train_steps_done, skipped")
                continue
        event = record.get("event")
        if event == RESUME_EVENT:
            records = [(s, r) for s, r in records if s <= step]
        elif event == RESTART_EVENT:
            records = []
        elif event is None:
            records.append((step, record))
    curves = RunCurves(name=name, path=file, skipped=skipped)
    for step, record in records:
        _add_record(curves, step, record)
    if not curves.train and not curves.evals:
        raise ResultsFileError(f"{file}: holds no results yet (the first appear after training_log_interval_in_steps)")
    return curves


def _add_record(curves: RunCurves, step: int, record: dict) -> None:
    groups = [record.get(key) for key in ("losses", "metrics", "throughput_metrics")]
    values = {k: v for group in groups if isinstance(group, dict) for k, v in group.items()}
    tag = str(record.get("dataloader_tag", "?"))
    is_train = TRAIN_LOSS in values or tag == curves.train_tag
    if is_train:
        curves.train_tag = curves.train_tag or tag
        target = curves.train
        tokens = _number(values.get("consumed tokens"))
        if tokens is not None:
            curves.tokens_at_step[step] = int(tokens)
    else:
        target = curves.evals.setdefault(tag, {})
    for key, value in values.items():
        number = _number(value)
        if number is None:
            continue
        target.setdefault(key, Series()).add(step, number)


def eval_loss_name(metrics: dict[str, Series]) -> str | None:
    for name in metrics:
        if "loss" in name:
            return name
    return None


def wants_log_scale(values: list[float]) -> bool:
    """A loss curve reads better on a log axis once it spans more than a factor of 2 (the early drop would
    otherwise flatten everything after it)."""
    positive = [v for v in values if math.isfinite(v) and v > 0]
    if len(positive) < 2 or len(positive) < sum(1 for v in values if math.isfinite(v)):
        return False
    return max(positive) / min(positive) > 2
