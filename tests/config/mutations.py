"""Mutations of real configs, as a fuzzer and as a careless or hostile user would make them, and the oracle that
`modalities validate` must satisfy on each: exit 0, or exit 1 with every error positioned; never a traceback.
The `extends` family writes an experiment file on top of a config: merges a user would write, and hostile
`extends` (missing files, directories, devices, cycles, chains past the limit, binary files, symlink loops,
too many values or bytes in all).

Used by tests/config/test_fuzz.py (a bounded number of cases under hypothesis) and by tools/fuzz_validate.py
(thousands of cases, each in a forked child, so crashes and hangs are counted too). A case is a function of
(family, seed, base config): the same triple gives the same mutated text and flags.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIGS = [
    REPO / "configs" / "quickstart.yaml",
    REPO / "configs" / "instruction_tuning" / "train.yaml",
    REPO / "configs" / "pack_quickstart.yaml",
    REPO / "tests" / "training" / "tiny.yaml",
    REPO / "tests" / "training" / "tp.yaml",  # tensor parallelism
    REPO / "tests" / "training" / "pp.yaml",  # pipeline components
]

# Values a careless or hostile user may write where another value was.
HOSTILE_VALUES = [
    ".nan",
    ".inf",
    "-1",
    "0",
    "1e20",
    "-1e20",
    "9" * 5000,
    "!!int abc",
    "!!float abc",
    "!!bool maybe",
    "[",
    "{",
    "]",
    "'",
    '"',
    "&a [*a]",
    "*undefined",
    "!!python/object/apply:os.system [ls]",
    "!custom x",
    "${settings}",
    "${nope}",
    "${settings.step_profile}",
    "${cuda_env:NOPE}",
    "${oc.env:NOPE}",
    "${oc.decode:'[1'}",
    "${",
    "$}",
    "x" * 100_000,
    "[" * 200 + "]" * 200,
    "{a: " * 200 + "1" + "}" * 200,
    "null",
    "[]",
    "{}",
    "''",
    "true",
    "component_key",
    "{instance_key: model, pass_type: BY_REFERENCE}",
    "{instance_key: nope, pass_type: BY_REFERENCE}",
    "{component_key: model, variant_key: gpt2, config: {}}",
    "{component_key: 3, variant_key: [1]}",
    "2026-01-01",
    "0x1F",
    "1_000",
    "- a",
    "|\n  text",
    "'\\x00'",
]
SPECIAL_CHARS = list(":{}[],&*!|>'\"%@`#-? \t\n\x00\ufeff\\$") + ["${", "}}", "<<: ", "---\n", "...\n", "\r"]


@dataclass
class Case:
    family: str
    seed: int
    base: Path
    text: str
    overrides: list[str] = field(default_factory=list)
    # family `extends`: an experiment file merged onto the base (not written to disk: given as text, beside the
    # base), the other files it names (name -> text, beside the base, also only as text) and files made on disk
    # in a temporary folder while the case runs (name -> bytes, DIRECTORY or SYMLINK_LOOP; `@TMP@` in a text
    # stands for that folder)
    overlay: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    disk: dict[str, Any] = field(default_factory=dict)


OVERLAY_NAME = "_fuzz_overlay.yaml"
DIRECTORY, SYMLINK_LOOP = "<directory>", "<symlink loop>"


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _value_lines(text: str) -> list[int]:
    return [i for i, line in enumerate(_lines(text)) if ":" in line and not line.lstrip().startswith("#")]


def delete_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    del lines[rng.randrange(len(lines))]
    return "\n".join(lines)


def duplicate_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return "\n".join(lines)


def swap_lines(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def reindent_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    stripped = lines[i].lstrip(" ")
    lines[i] = " " * rng.choice([0, 1, 3, 5, 8, 40]) + ("\t" if rng.random() < 0.2 else "") + stripped
    return "\n".join(lines)


def truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text))]


def insert_chars(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(SPECIAL_CHARS) + text[at:]
    return text


def replace_char(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text))
    replacement = chr(rng.choice([rng.randrange(0x20), rng.randrange(0x20, 0x7F), rng.randrange(0x80, 0x3000)]))
    return text[:at] + replacement + text[at + 1 :]


def retype_value(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    candidates = _value_lines(text)
    if not candidates:
        return text
    i = rng.choice(candidates)
    key, _, _ = lines[i].partition(":")
    lines[i] = f"{key}: {rng.choice(HOSTILE_VALUES)}"
    return "\n".join(lines)


def append_special(rng: random.Random, text: str) -> str:
    """A top-level block of one of the classes that crashed, hung or flooded before the limits."""
    n = rng.choice([10, 100, 500, 1000, 5000, 50_000])
    kind = rng.randrange(13)
    if kind == 0:
        block = "deep: " + "[" * n + "]" * n
    elif kind == 1:
        block = "deep: " + "{a: " * n + "1" + "}" * n
    elif kind == 2:
        block = "deep:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(min(n, 3000))) + " " * 3001 + "b: 1"
    elif kind == 3:
        block = "c0: &c0 [1]\n" + "".join(f"c{i}: &c{i} [*c{i - 1}]\n" for i in range(1, min(n, 2000)))
    elif kind == 4:
        block = rng.choice(["loop: &s {<<: *s}", "loop: &s [*s]", "loop: &s {a: [*s]}", "loop: *nowhere"])
    elif kind == 5:
        block, previous = 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n', "l0"
        for j in range(1, 10):
            block += f"l{j}: &l{j} [" + ",".join([f"*{previous}"] * 9) + "]\n"
            previous = f"l{j}"
    elif kind == 6:
        block = (
            "fan:\n  a0: '"
            + "x" * 64
            + "'\n"
            + "".join(f"  a{i}: '" + f"${{fan.a{i - 1}}}" * rng.choice([2, 10, 100]) + "'\n" for i in range(1, 30))
        )
    elif kind == 7:
        block = "fan:\n  a0: [1, 2, 3]\n" + "".join(
            f"  a{i}: [" + ", ".join([f'"${{fan.a{i - 1}}}"'] * rng.choice([2, 3])) + "]\n" for i in range(1, 40)
        )
    elif kind == 8:
        block = "chain:\n  a0: 1\n" + "".join(f'  a{i}: ["${{chain.a{i - 1}}}"]\n' for i in range(1, min(n, 600)))
    elif kind == 9:
        item = "    - {component_key: loss, variant_key: clm_cross_entropy_loss, config: {target_key: 1}}"
        block = "flood:\n  component_key: loss\n  variant_key: x\n  config:\n   l:\n" + "\n".join(
            [item] * min(n, 20_000)
        )
    elif kind == 10:
        block = "---\nsecond: document"
    elif kind == 11:
        block = "big: " + "9" * rng.choice([4300, 4301, 100_000])
    else:
        block = "cycle: {a: '${cycle.b}', b: '${cycle.a}'}"
    return text.rstrip("\n") + "\n" + block + "\n"


def structure(rng: random.Random, text: str, values: Any) -> str:
    """A mutation of the parsed config: delete, rename or retype a key, or swap a component for a scalar."""
    paths = [p for p in _paths(values) if p]
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(paths)
        parent = values
        try:
            for part in path[:-1]:
                parent = parent[part]
            key = path[-1]
            action = rng.randrange(4)
            if action == 0:
                del parent[key]
            elif action == 1 and isinstance(parent, dict):
                parent[str(key) + rng.choice(["x", "_", "s", "lenght"])] = parent.pop(key)
            else:
                parent[key] = rng.choice([None, 3, -1, 1e20, "x", [], {}, [1, [2]], {"component_key": "model"}])
        except (KeyError, IndexError, TypeError):
            pass
    return dump(values)


def dump(config: Any) -> str:
    import io

    from ruamel.yaml import YAML

    stream = io.StringIO()
    YAML(typ="safe", pure=True).dump(config, stream)
    return stream.getvalue()


def _paths(value: Any, prefix: tuple = ()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _dotted_paths(values: Any) -> list[str]:
    return [".".join(map(str, p)) for p in _paths(values) if p]


def set_flags(rng: random.Random, text: str, values: Any) -> list[str]:
    """--set flags: an existing or new path with a hostile value, or a malformed flag."""
    flags = []
    paths = _dotted_paths(values)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(4)
        if kind == 0:
            flags.append(
                rng.choice(
                    [
                        "",
                        "=",
                        "=1",
                        "a..b=1",
                        ".a=1",
                        "a.=1",
                        "x.-1=1",
                        "a.99999999999999999999=1",
                        "settings.99=1",
                        "é=1",
                        "a b=1",
                    ]
                )
            )
        else:
            path = rng.choice(paths) if kind < 3 else rng.choice(paths) + "." + rng.choice(["x", "0", "-1"])
            flags.append(f"{path}={rng.choice(HOSTILE_VALUES)}")
    return flags


def plausible(rng: random.Random, text: str, values: Any) -> list[str]:
    """--set flags a user might well write: other sizes, lengths, intervals, targets and keys. Most such configs
    are still valid, which is what the validate-implies-train property needs to be exercised."""
    leaves = [(p, v) for p, v in _leaf_items(values) if p and p[0] != "sweep"]
    ints = [p for p, v in leaves if isinstance(v, int) and not isinstance(v, bool)]
    strings = [v for _, v in leaves if isinstance(v, str) and "${" not in v and len(v) < 40]
    keys = [p for p, v in leaves if isinstance(v, str) and str(p[-1]).endswith("_key") and "${" not in v]
    flags = []
    for _ in range(rng.randint(1, 3)):
        if ints and rng.random() < 0.7:
            path = rng.choice(ints)
            flags.append(f"{'.'.join(map(str, path))}={rng.choice([0, 1, 2, 3, 8, 16, 33, 64, 100, 1000, 10**6])}")
        elif keys and strings:
            flags.append(f"{'.'.join(map(str, rng.choice(keys)))}={rng.choice(strings)}")
    return flags


def _leaf_items(value: Any, prefix: tuple = ()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaf_items(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaf_items(v, prefix + (i,))
    else:
        yield prefix, value


def _nested(path: tuple, value: str) -> str:
    """YAML that sets ``value`` (YAML text) at the mapping path ``path``."""
    lines = [("  " * i) + f"{json.dumps(str(key))}:" for i, key in enumerate(path[:-1])]
    return "\n".join(lines + [("  " * (len(path) - 1)) + f"{json.dumps(str(path[-1]))}: {value}"]) + "\n"


def _mapping_paths(values: Any) -> list[tuple]:
    return [p for p in _paths(values) if p and all(isinstance(k, str) for k in p) and p[0] != "extends"]


def extends_case(rng: random.Random, base: Path, values: Any) -> tuple[str, dict, dict]:
    """An experiment file on top of ``base`` (overlay text, texts of other files, files on disk)."""
    paths = _mapping_paths(values)
    kind = rng.randrange(14)
    files: dict[str, str] = {}
    disk: dict[str, Any] = {}
    extends: Any = base.name
    body = ""
    if kind == 0:
        extends = [base.name, rng.choice(["_fuzz_missing.yaml", "no/such/dir/x.yaml", "/nonexistent.yaml"])]
    elif kind == 1:
        disk["dir.yaml"] = DIRECTORY
        extends = [base.name, rng.choice([".", "..", "/", "@TMP@/dir.yaml", "@TMP@"])]
    elif kind == 2:  # a cycle through files, back to the overlay or to a file of the chain
        n = rng.randint(1, 4)
        for i in range(n):
            target = f"_fuzz_c{i + 1}.yaml" if i + 1 < n else rng.choice([OVERLAY_NAME, "_fuzz_c0.yaml"])
            files[f"_fuzz_c{i}.yaml"] = f"extends: {target}\n"
        extends = [base.name, "_fuzz_c0.yaml"]
    elif kind == 3:
        extends = rng.choice([OVERLAY_NAME, [base.name, OVERLAY_NAME], ["./" + OVERLAY_NAME]])
    elif kind == 4:  # a chain of files, short or past MAX_CONFIG_FILES
        n = rng.choice([3, 98, 99, 100, 150, 1000])
        for i in range(n):
            files[f"_fuzz_c{i}.yaml"] = f"extends: {f'_fuzz_c{i + 1}.yaml' if i + 1 < n else base.name}\nv{i}: {i}\n"
        extends = "_fuzz_c0.yaml"
    elif kind == 5:
        disk["binary.yaml"] = bytes(rng.randrange(256) for _ in range(rng.choice([1, 10, 1000])))
        extends = [base.name, "@TMP@/binary.yaml"]
    elif kind == 6:
        extends = [base.name, rng.choice(["/dev/zero", "/dev/null", "/proc/self/status", "/etc"])]
    elif kind == 7:
        disk["loop.yaml"] = SYMLINK_LOOP
        extends = [base.name, "@TMP@/loop.yaml"]
    elif kind == 8:
        extends = rng.choice([3, {"a": 1}, [["a"]], "", None, [base.name, 3], [], [base.name, base.name]])
    elif kind == 9 and paths:  # !delete of inherited keys, or of keys that are not there
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(paths)
            path = path[:-1] + (path[-1] + rng.choice(["", "", "x"]),)
            body += _nested(path, "!delete" + rng.choice(["", "", " 3"]))
    elif kind == 10 and paths:  # another variant of a component, or !replace of a mapping
        path = rng.choice(paths)
        value = rng.choice(["{variant_key: default}", "{variant_key: nope, config: {}}", "!replace {}",
                            "!replace {component_key: model}", "{component_key: loss}", "{instance_key: model}"])
        body = _nested(path, value)
    elif kind == 11 and paths:  # a hostile value where the base has one
        body = _nested(rng.choice(paths), rng.choice(HOSTILE_VALUES))
    elif kind == 12:  # too much in all, though no file alone is: values (through aliases, cheap), or bytes
        if rng.random() < 0.5:  # 249,001 values once expanded, and this file's 1,000 and the base's
            files["_fuzz_big.yaml"] = "a: &a [" + ",".join(["0"] * 500) + "]\nb: [" + ", ".join(["*a"] * 496) + "]\n"
            body = "also: [" + ",".join(["1"] * 1000) + "]\n"
            extends = [base.name, "_fuzz_big.yaml"]
        else:
            files["_fuzz_big1.yaml"] = "big: '" + "x" * (8 * 1024 * 1024) + "'\n"
            files["_fuzz_big2.yaml"] = "bigger: '" + "y" * (9 * 1024 * 1024) + "'\n"
            extends = [base.name, "_fuzz_big1.yaml", "_fuzz_big2.yaml"]
    elif paths:  # what a user writes: another number, a few of them
        ints = [(p, v) for p, v in _leaf_items(values) if p in paths and isinstance(v, int) and not isinstance(v, bool)]
        for path, value in rng.sample(ints, min(len(ints), rng.randint(1, 3))):
            body += _nested(path, str(rng.choice([0, 1, 2, value, value * 2, 100])))
    if isinstance(extends, str) and rng.random() < 0.2:
        extends = [extends]
    return f"extends: {json.dumps(extends)}\n" + body, files, disk


TEXT_FAMILIES: dict[str, Callable[[random.Random, str], str]] = {
    "delete_line": delete_line,
    "duplicate_line": duplicate_line,
    "swap_lines": swap_lines,
    "reindent_line": reindent_line,
    "truncate": truncate,
    "insert_chars": insert_chars,
    "replace_char": replace_char,
    "retype_value": retype_value,
    "append_special": append_special,
}
FAMILIES = [*TEXT_FAMILIES, "structure", "set_flags", "plausible", "extends"]


def make_case(family: str, seed: int, base: Path) -> Case:
    from modalities.config.load import load_text

    rng = random.Random(f"{family}:{seed}:{base.name}")
    text = base.read_text(encoding="utf-8")
    if family in TEXT_FAMILIES:
        return Case(family, seed, base, TEXT_FAMILIES[family](rng, text))
    values = load_text(text, str(base), merge_tags=True).values  # a file with `extends`: its own part
    if family == "extends":
        overlay, files, disk = extends_case(rng, base, values)
        return Case(family, seed, base, text, overlay=overlay, files=files, disk=disk)
    if family == "structure":
        return Case(family, seed, base, structure(rng, text, values))
    if family == "plausible":
        return Case(family, seed, base, text, plausible(rng, text, values))
    return Case(family, seed, base, text, set_flags(rng, text, values))


class OracleViolation(AssertionError):
    pass


def compile_case(case: Case, root: str | None = "auto", registry=None):
    """The case compiled as `modalities validate` (root "auto") or `modalities train` (root "training") compile
    it. The text is read as if it were the base config (same folder), so its relative paths still point at real
    files (and the files it extends are found); an `extends` case's overlay and files are read as texts beside
    it. Raises ConfigError where the compiler does."""
    from modalities.config.compiler import compile_document, resolve
    from modalities.config.compose import compose_files

    with case_files(case) as (paths, texts):
        document = compose_files(paths, sources=texts)
        resolved, diagnostics = resolve(document, overrides=case.overrides, experiment_id="fuzz")
    return compile_document(resolved, registry, diagnostics=diagnostics, root=root)


@contextlib.contextmanager
def case_files(case: Case):
    """(the files to compose, their texts), with the case's files on disk made in a temporary folder."""
    folder = case.base.parent
    if case.overlay is None:
        yield [case.base], {case.base: case.text}
        return
    tmp = tempfile.mkdtemp(prefix="fuzz-extends-")
    try:
        for name, content in case.disk.items():
            path = os.path.join(tmp, name)
            if content == DIRECTORY:
                os.mkdir(path)
            elif content == SYMLINK_LOOP:
                os.symlink(path, path)
            else:
                Path(path).write_bytes(content)
        texts = {folder / name: text.replace("@TMP@", tmp) for name, text in case.files.items()}
        texts[folder / OVERLAY_NAME] = case.overlay.replace("@TMP@", tmp)
        texts[case.base] = case.text
        yield [folder / OVERLAY_NAME], texts
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_validate(case: Case, registry=None) -> tuple[int, list]:
    """What `modalities validate` does with the case: (exit code, diagnostics)."""
    from modalities.config.diagnostics import ConfigError, has_errors

    try:
        compiled = compile_case(case, registry=registry)
    except ConfigError as e:
        return 1, e.diagnostics
    return (1 if has_errors(compiled.diagnostics) else 0), compiled.diagnostics


def check_case(case: Case) -> int:
    """The oracle: raises OracleViolation unless validate ends in 0, or in 1 with every error positioned and
    rendered; returns the exit code."""
    from modalities.config.diagnostics import ERROR, render_json, render_text

    code, diagnostics = run_validate(case)
    errors = [d for d in diagnostics if d.severity == ERROR]
    if code == 1 and not errors:
        raise OracleViolation("exit 1 without an error")
    for d in diagnostics:
        if d.code == "contract-failed":
            raise OracleViolation(f"a run-contract check crashed: {d.message}")
    for d in errors:
        if d.span is None and str(case.base) not in d.message:
            raise OracleViolation(f"an error without a position: {d.message}")
        if not d.message:
            raise OracleViolation("an error without a message")
    text = render_text(diagnostics)
    render_json(diagnostics)
    if len(text) > 200_000:
        raise OracleViolation(f"{len(text):,} characters of diagnostics")
    return code
