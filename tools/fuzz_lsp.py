"""Edits nobody planned, sent to one `modalities lsp` as an editor would, with requests at random places.

    python tools/fuzz_lsp.py [--cases 300] [--requests 6]

Each case is a mutation of a shipped config (tests/config/mutations.py's text families: deleted, duplicated,
swapped and re-indented lines, truncation, inserted characters, hostile values), sent as a change of a document
opened at the base config's path (the text stays in memory), followed by completion, hover, definition,
references and rename requests at random positions. The oracle: the server answers every request (no error
response but a refused rename), publishes the diagnostics of every version, those diagnostics are what
`modalities validate` finds in the same text (compared in this process through the same compile entry), and the
server is still running at the end. Prints the failures and the slowest change -> diagnostics time.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.config.mutations import BASE_CONFIGS, TEXT_FAMILIES, make_case
from tests.schema.lsp_client import LspClient

SEVERITY = {1: "error", 2: "warning", 3: "note"}
RENAME_REFUSALS = ("only a top-level component", "already a top-level key", "is not a plain name")


def expected(base: Path, text: str) -> list[tuple]:
    """validate's diagnostics of ``text`` read as the file ``base``, in this file, as (line, column, severity,
    message) tuples of the LSP's numbering."""
    from modalities.config.compiler import compile_file
    from modalities.config.diagnostics import ConfigError, fold
    from modalities.config.spans import dotted

    try:
        diagnostics = compile_file(base, sources={base.resolve(): text},
                                   experiments_root=REPO / "experiments").diagnostics
    except ConfigError as e:
        diagnostics = e.diagnostics
    found = []
    for d in fold(diagnostics):
        if d.span is not None and Path(d.span.file).resolve() != base.resolve():
            continue  # shown in another file
        message = (f"{dotted(d.path)}: " if d.path else "") + d.message + (f"\nhint: {d.hint}" if d.hint else "")
        found.append((d.span.line - 1 if d.span else 0, d.severity, message))
    return sorted(found)


def shown(diagnostics: list[dict]) -> list[tuple]:
    return sorted((d["range"]["start"]["line"], SEVERITY[d["severity"]], d["message"]) for d in diagnostics)


def requests(client: LspClient, uri: str, text: str, rng: random.Random, count: int) -> list[str]:
    lines = text.splitlines() or [""]
    failures = []
    for _ in range(count):
        line = rng.randrange(len(lines))
        character = rng.randrange(len(lines[line]) + 1)
        method = rng.choice(["completion", "hover", "definition", "references", "rename"])
        try:
            if method == "completion":
                client.completions(uri, line, character)
            elif method == "hover":
                client.hover(uri, line, character)
            elif method == "definition":
                client.definition(uri, line, character)
            elif method == "references":
                client.references(uri, line, character, include_declaration=True)
            else:
                client.rename(uri, line, character, "renamed_component")
        except RuntimeError as e:
            if not (method == "rename" and any(refusal in str(e) for refusal in RENAME_REFUSALS)):
                failures.append(f"{method} at {line}:{character}: {e}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    client = LspClient(REPO, {}, command=[sys.executable, "-m", "modalities", "lsp"], env=env)
    rng = random.Random(args.seed)
    bases = [b for b in BASE_CONFIGS if b.is_file()]
    uris = {base: client.open(base, base.read_text(), version=1) for base in bases}
    versions = dict.fromkeys(bases, 1)
    failures, slowest = [], 0.0
    families = list(TEXT_FAMILIES)
    try:
        for number in range(args.cases):
            base = bases[number % len(bases)]
            case = make_case(families[number % len(families)], args.seed * 100_000 + number, base)
            versions[base] += 1
            start = time.perf_counter()
            client.change(uris[base], case.text, versions[base])
            got = client.diagnostics_of_version(uris[base], versions[base])
            slowest = max(slowest, time.perf_counter() - start)
            if shown(got) != expected(base, case.text):
                failures.append(f"case {number} ({case.family} of {base.name}): diagnostics differ from validate's")
            failures += [f"case {number} ({case.family}): {f}" for f in requests(client, uris[base], case.text, rng,
                                                                                args.requests)]
            if client.proc.poll() is not None:
                failures.append(f"case {number}: the server exited ({client.proc.returncode})")
                break
    finally:
        alive = client.proc.poll() is None
        client.close()
    for failure in failures[:40]:
        print("FAIL", failure)
    print(f"{args.cases} cases, {len(failures)} failures, server alive to the end: {alive}; slowest change -> "
          f"diagnostics {slowest * 1000:.0f} ms")
    return 1 if failures or not alive else 0


if __name__ == "__main__":
    sys.exit(main())
