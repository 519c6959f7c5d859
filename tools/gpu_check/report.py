"""Gather the step records of tools/gpu_check.sh into DIR/report.json and DIR/report.md, and print a summary.

    python tools/gpu_check/report.py --work WORK --out DIR [--dry-run] [--total-wall-s S] [--command TEXT]

Standard library only: the report is written even when the project's dependencies do not import.
WORK/steps.tsv holds one line per step as the shell ran it (id, exit code, wall seconds, time limit);
WORK/results/<id>.json is what the step recorded; WORK/logs/<id>.log its output.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

OK, FAILED, NOT_POSSIBLE = "ok", "failed", "not possible here"
TIMED_OUT = (124, 137)  # timeout(1): the command ran past its limit (137: killed after the grace period)
LOG_TAIL_LINES, LOG_TAIL_CHARS = 40, 3000
STDOUT_LIMIT = 11000  # the caller sees the last 12,000 characters of stdout
DENSE_MFU_GOAL = 0.50


def read_steps(work: Path) -> list[dict]:
    """Each step the shell ran, in order, with what it recorded, its wall time, and its log's tail if it failed."""
    steps = []
    table = work / "steps.tsv"
    lines = table.read_text().splitlines() if table.is_file() else []
    for line in lines:
        step_id, rc, wall, limit = line.split("\t")
        path = work / "results" / f"{step_id}.json"
        record = json.loads(path.read_text()) if path.is_file() else {
            "id": step_id, "title": step_id, "status": FAILED, "numbers": {}, "notes": [],
            "error": f"the step left no record (exit code {rc}): it did not start, see its log"}
        record.update(exit_code=int(rc), wall_s=round(float(wall), 1), time_limit_s=int(float(limit)))
        if int(rc) in TIMED_OUT and record["status"] != OK:
            record.update(status=FAILED, error=f"timed out: stopped at its limit of {int(float(limit))} s")
        if record["status"] == FAILED:
            record["log_tail"] = log_tail(work / "logs" / f"{step_id}.log")
        steps.append(record)
    return steps


def log_tail(path: Path) -> str:
    if not path.is_file():
        return "(no log)"
    text = "\n".join(path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    return text[-LOG_TAIL_CHARS:]


def environment(steps: list[dict]) -> dict:
    for step in steps:
        if step["id"] == "environment":
            return step.get("numbers", {})
    return {}


def goals(steps: list[dict]) -> dict:
    """The issue's goal for the dense model (not a pass/fail of the check)."""
    for step in steps:
        if step["id"] in ("mfu_dense", "mfu_dense_fallback") and step["status"] == OK:
            mfu = step["numbers"].get("MFU (median tokens/s, this script's FLOP count)")
            if mfu is not None:
                return {"dense 1B MFU >= 50% on one H200": {"measured": mfu, "met": mfu >= DENSE_MFU_GOAL,
                                                             "step": step["id"]}}
    return {"dense 1B MFU >= 50% on one H200": {"measured": None, "met": None}}


def build_report(args: argparse.Namespace) -> dict:
    steps = read_steps(Path(args.work))
    counts = {status: sum(s["status"] == status for s in steps) for status in (OK, FAILED, NOT_POSSIBLE)}
    return {
        "format": "modalities gpu_check report, version 1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": "dry run (CPU, tiny sizes)" if args.dry_run else "GPU",
        "command": args.command,
        "total_wall_s": round(args.total_wall_s, 1) if args.total_wall_s is not None else None,
        "environment": environment(steps),
        "counts": counts,
        "goals": goals(steps),
        "steps": steps,
    }


# ------------------------------------------------------------------------------------------------------ markdown


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def headline(step: dict) -> str:
    """The numbers of a step worth one table cell."""
    n = step.get("numbers", {})
    if step["id"] == "quickstart":
        return fmt({k: v for k, v in n.get("comparison with the CPU run", {}).items() if k != "tolerances"})
    if step["id"] == "fsdp1":
        return "; ".join(f"{k} {fmt(n[k])}" for k in ("warm minus full (steps 5, 6)", "tolerance (absolute)") if k in n)
    if step["id"].startswith("mfu"):
        keys = ("tokens/s (median)", "MFU (median tokens/s, this script's FLOP count)",
                "MFU (median of the framework's mfu_calculator)", "peak memory MB", "tokens per step")
        return "; ".join(f"{k} {fmt(n[k])}" for k in keys if n.get(k) is not None)
    if step["id"] == "environment":
        keys = ("torch", "cuda (torch built with)", "gpu", "nccl")
        return "; ".join(f"{k} {fmt(n[k])}" for k in keys if n.get(k) is not None)
    return ""


def environment_lines(env: dict) -> list[str]:
    versions = env.get("versions", {})
    rows = [("python", env.get("python")), ("torch", env.get("torch")),
            ("CUDA (torch built with)", env.get("cuda (torch built with)")), ("cuDNN", env.get("cudnn")),
            ("NCCL", env.get("nccl")), ("nvidia-smi (driver, name, memory, max SM clock, power limit)",
                                         env.get("nvidia-smi")),
            ("GPU", env.get("gpu")), ("GPU memory GiB", env.get("gpu memory GiB")),
            ("peak bf16 FLOP/s used for MFU", env.get("peak bf16 FLOP/s of this GPU (modalities/models/mfu/peaks.py)")),
            ("peak table entry for NVIDIA H200", env.get("peak table entry for 'NVIDIA H200'")),
            ("triton", versions.get("triton")), ("transformers", versions.get("transformers")),
            ("pydantic", versions.get("pydantic"))]
    return ["| | |", "|---|---|"] + [f"| {k} | {fmt(v)} |" for k, v in rows if v is not None]


def step_details(step: dict, per_step_rows: bool) -> list[str]:
    lines = [f"### {step['id']}: {step['title']}", "",
             f"status **{step['status']}**, {step['wall_s']} s (limit {step['time_limit_s']} s)"]
    if step.get("error"):
        lines.append(f"error: {step['error']}")
    lines += [f"- note: {note}" for note in step.get("notes", [])]
    for key, value in step.get("numbers", {}).items():
        if key == "per step":
            continue
        lines.append(f"- {key}: {fmt(value)}")
    per_step = step.get("numbers", {}).get("per step")
    if per_step and per_step_rows:
        lines += ["", "| step | loss | tokens/s | MFU (framework) | peak memory MB |", "|---|---|---|---|---|"]
        lines += [f"| {r['step']} | {fmt(r['loss'])} | {fmt(r['tokens/s'])} | {fmt(r['mfu'])} | "
                  f"{fmt(r['peak memory MB'])} |" for r in per_step]
    if step.get("log_tail"):
        lines += ["", "log tail:", "```", step["log_tail"], "```"]
    return lines + [""]


def header_lines(report: dict) -> list[str]:
    goal = next(iter(report["goals"].values()))
    met = {True: "met", False: "not met", None: "not measured"}[goal["met"]]
    lines = [f"# GPU check: {report['mode']}", "",
             f"{report['created']}; total {report['total_wall_s']} s; `{report['command']}`", "",
             "counts: " + ", ".join(f"{k} {v}" for k, v in report["counts"].items()),
             f"goal, dense 1B MFU >= 50%: {met}" + (f" ({goal['measured']:.1%})" if goal["measured"] else ""), "",
             "## Environment", "", *environment_lines(report["environment"]), "", "## Steps", "",
             "| step | status | wall s | numbers |", "|---|---|---|---|"]
    return lines + [f"| {s['id']} | {s['status']} | {s['wall_s']} | {headline(s)} |" for s in report["steps"]]


def markdown(report: dict) -> str:
    """report.md: the header, then every step in full (per-step MFU tables, log tails of failures)."""
    lines = header_lines(report) + ["", "## Details", ""]
    for step in report["steps"]:
        lines += step_details(step, per_step_rows=True)
    return "\n".join(lines)


def summary(report: dict) -> str:
    """What stdout ends with: the header and, for each step that did not pass, its error and last log lines."""
    lines = header_lines(report)
    for step in report["steps"]:
        if step["status"] == OK:
            continue
        lines += ["", f"{step['id']}: {step['status']}: {step.get('error') or ''}"]
        if step.get("log_tail"):
            tail = step["log_tail"].splitlines()[-12:]
            lines += ["    " + line[-200:] for line in tail]
    text = "\n".join(lines)
    if len(text) > STDOUT_LIMIT:  # the head (environment, the steps table) matters most
        text = text[:STDOUT_LIMIT] + "\n... (cut: the whole report is report.md)"
    return text


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--total-wall-s", type=float)
    parser.add_argument("--command", default="tools/gpu_check.sh")
    args = parser.parse_args(argv)
    report = build_report(args)
    out = Path(args.out)
    write_atomically(out / "report.json", json.dumps(report, indent=1, default=str) + "\n")
    write_atomically(out / "report.md", markdown(report) + "\n")
    print(summary(report))
    print(f"\nreport: {out / 'report.json'}, {out / 'report.md'}; logs: {out / 'logs.txt'}")
    return 0 if report["counts"][FAILED] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
