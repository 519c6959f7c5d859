"""Fuzz `modalities validate` with mutations of our own configs (tests/config/mutations.py: line edits, special
characters, hostile values, YAML bombs and deep nesting, structural changes, --set flags, and experiment files
on top of them: merges, and hostile `extends` (missing files, directories, devices, cycles, chains past the
file limit, binary files, symlink loops, too many values or bytes in all)).

Each case runs in a forked child with a time and memory limit, so a crash (a signal), a hang or a blow-up is
counted like a traceback. Every case must end in exit 0, or exit 1 with every error positioned and printable.
The time limit is CPU seconds (a case on a machine shared with other work waits without spending them), with a
wall-clock limit of five times that for a case that hangs without computing.

    python tools/fuzz_validate.py --cases 10000 [--start 0] [--timeout 10] [--memory-gb 2] [--keep DIR]
                                  [--family extends ...]

Prints one line per outcome kind and family; failing cases are written to --keep (text and flags) to reproduce
with `modalities validate FILE --set ...`. Exit 1 if any case failed. Record figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.config.mutations import BASE_CONFIGS, FAMILIES, OracleViolation, check_case, make_case  # noqa: E402

OK, VIOLATION, EXCEPTION = 0, 3, 4


def _child(case, timeout: int, memory_bytes: int, report_fd: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (timeout, timeout + 5))  # a forked child's CPU time starts at 0
    signal.alarm(5 * timeout)
    try:
        code = check_case(case)
        message, status = f"exit {code}", OK
    except OracleViolation as e:
        message, status = str(e), VIOLATION
    except BaseException:  # noqa: BLE001 - the point is to catch everything
        message, status = traceback.format_exc(limit=6), EXCEPTION
    os.write(report_fd, message.encode("utf-8", "replace")[:8000])
    os._exit(status)


def run_case(case, timeout: int, memory_bytes: int) -> tuple[str, str]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(case, timeout, memory_bytes, write_fd)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    message = b"".join(chunks).decode("utf-8", "replace")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return ("timeout" if sig in (signal.SIGALRM, signal.SIGXCPU) else f"signal {signal.Signals(sig).name}"), message
    return {OK: "ok", VIOLATION: "oracle", EXCEPTION: "traceback"}.get(os.WEXITSTATUS(status), "exit?"), message


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--timeout", type=int, default=10, help="CPU seconds per case (wall clock: five times)")
    parser.add_argument("--memory-gb", type=float, default=2.0, help="address space per case")
    parser.add_argument("--keep", default=None, help="folder for the failing cases")
    parser.add_argument("--family", action="append", choices=FAMILIES, default=None,
                        help="only these mutation families (repeatable; default: all)")
    args = parser.parse_args()
    families = args.family or FAMILIES

    # Import everything a case uses before forking, so each child starts warm.
    check_case(make_case("delete_line", 0, BASE_CONFIGS[0]))
    outcomes: collections.Counter = collections.Counter()
    failures = []
    started = time.perf_counter()
    for i in range(args.cases):
        seed = args.start + i // len(families)
        family = families[i % len(families)]
        base = BASE_CONFIGS[seed % len(BASE_CONFIGS)]
        case = make_case(family, seed, base)
        outcome, message = run_case(case, args.timeout, int(args.memory_gb * 1024**3))
        kind = "validate-ok" if message == "exit 0" else ("validate-error" if message == "exit 1" else outcome)
        outcomes[kind] += 1
        if (i + 1) % 1000 == 0:  # a long run stopped from outside still says how far it got
            counts = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
            print(f"[{i + 1} cases, {time.perf_counter() - started:.0f} s] {counts}; failures {len(failures)}", flush=True)
        if outcome != "ok":
            failures.append((family, seed, base, outcome, message))
            if args.keep:
                folder = Path(args.keep) / f"{family}-{seed}-{base.stem}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / base.name).write_text(case.text, encoding="utf-8", errors="replace")
                if case.overlay is not None:  # an `extends` case: `modalities validate FOLDER/_fuzz_overlay.yaml`
                    from tests.config.mutations import OVERLAY_NAME

                    (folder / OVERLAY_NAME).write_text(case.overlay, encoding="utf-8")
                    for name, text in case.files.items():
                        (folder / name).write_text(text, encoding="utf-8")
                (folder / "case.json").write_text(
                    json.dumps(
                        {
                            "family": family,
                            "seed": seed,
                            "base": str(base),
                            "overrides": case.overrides,
                            "files_on_disk": {name: repr(content)[:200] for name, content in case.disk.items()},
                            "outcome": outcome,
                            "message": message,
                        },
                        indent=2,
                    )
                )
    elapsed = time.perf_counter() - started
    print(
        f"{args.cases} cases in {elapsed:.0f} s ({elapsed / args.cases * 1000:.0f} ms a case), "
        f"families {', '.join(families)}, bases {', '.join(p.name for p in BASE_CONFIGS)}"
    )
    for kind, count in sorted(outcomes.items()):
        print(f"  {kind:15} {count}")
    by_family = collections.Counter((f, o) for f, _, _, o, _ in failures)
    for (family, outcome), count in sorted(by_family.items()):
        print(f"  FAILED {family} {outcome}: {count}")
    for family, seed, base, outcome, message in failures[:10]:
        print(f"--- {family} seed {seed} {base.name}: {outcome}\n{message[-1500:]}")
    print(f"failures: {len(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
