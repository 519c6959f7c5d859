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
import re
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
    # Set by the families of the command line: the case is then a real file of this name (text written with
    # surrogateescape, so lone surrogates become the bytes a shell would have passed), validated through the CLI.
    file_name: str | None = None
    experiments_root: str | None = None
    last_checkpoint_info: str | None = None
    # family `extends`: an experiment file merged onto the base (not written to disk: given as text, beside the
    # base), the other files it names (name -> text, beside the base, also only as text) and files made on disk
    # in a temporary folder while the case runs (name -> bytes, DIRECTORY or SYMLINK_LOOP; `@TMP@` in a text
    # stands for that folder)
    overlay: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    disk: dict[str, Any] = field(default_factory=dict)

    @property
    def on_disk(self) -> bool:
        return self.file_name is not None


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


# --- the command line and the extremes: what a shell, a generator or a hostile user hands over ------------------

# Characters that must never reach a terminal as they are: C0 controls, DEL, C1 controls (ESC's 8-bit twin
# \x9b starts a CSI), line and paragraph separators, bidirectional overrides and non-characters.
CONTROL_CHARS = [
    "\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\r", "\x1b", "\x1b[2J\x1b[H", "\x1b]0;pwned\x07", "\x1b[31m",
    "\x7f", "\x85", "\x9b31m", "\u2028", "\u2029", "\u202e", "\u2066", "\ufeff", "\ufffe", "\uffff",
]


def _undecodable(rng: random.Random) -> str:
    """Text as Python receives a command-line argument or file name holding bytes that are not UTF-8: each byte
    it cannot decode becomes a lone surrogate (U+DC80..U+DCFF, PEP 383)."""
    bytes_not_utf8 = [0x80, 0xA0, 0xBF, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xFE, 0xFF]
    raw = bytes(rng.choice(bytes_not_utf8) for _ in range(rng.randint(1, 6)))
    return os.fsdecode(rng.choice([b"", b"a", b"/data/"]) + raw + rng.choice([b"", b"z", b".pbin"]))


def _leaf_paths(values: Any) -> list[str]:
    return [".".join(map(str, p)) for p, _ in _leaf_items(values) if p] or ["settings"]


def _key_lines(text: str) -> list[int]:
    return [i for i, line in enumerate(_lines(text)) if ":" in line and line.strip()[:1] not in ("#", "-", "")]


def _edit_line(rng: random.Random, text: str, new_key: Callable[[str], str] | None = None,
               new_value: str | None = None) -> str:
    """One key line of ``text`` with its key and/or value replaced (indentation kept)."""
    lines = _lines(text)
    candidates = _key_lines(text)
    if not candidates:
        return text
    i = rng.choice(candidates)
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    key, _, value = lines[i].strip().partition(":")
    if new_key is not None:
        key = new_key(key)
    lines[i] = f"{indent}{key}:{' ' + new_value if new_value is not None else value}"
    return "\n".join(lines)


def _yaml_single_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def non_utf8(rng: random.Random, case: Case, values: Any) -> Case:
    """Command-line values, keys and file names holding bytes that are not UTF-8; and a file whose text is not."""
    bad, leaf = _undecodable(rng), rng.choice(_leaf_paths(values))
    kind = rng.randrange(8)
    if kind == 0:
        case.overrides = [f"{leaf}={bad}"]
    elif kind == 1:
        case.overrides = [f"{leaf.rpartition('.')[0] or leaf}.{bad}=1"]
    elif kind == 2:
        case.overrides = [f"{bad}={bad}"]
    elif kind == 3:
        case.file_name = f"config{bad}.yaml"
    elif kind == 4:
        case.file_name, case.experiments_root = case.base.name, f"/tmp/experiments{bad}"
    elif kind == 5:
        case.file_name, case.last_checkpoint_info = case.base.name, f"last_checkpoint_info{bad}.json"
    elif kind == 6:  # the file's own bytes
        case.file_name = case.base.name
        case.text = _edit_line(rng, case.text, new_value=bad)
    else:
        case.file_name = case.base.name
        case.text = _edit_line(rng, case.text, new_key=lambda key: key + bad)
    return case


def control_chars(rng: random.Random, case: Case, values: Any) -> Case:
    """Control characters (terminal escapes, NUL, separators, bidi overrides) in values, keys, flags, file names."""
    char, leaf = rng.choice(CONTROL_CHARS), rng.choice(_leaf_paths(values))
    kind = rng.randrange(6)
    if kind == 0:
        case.text = _edit_line(rng, case.text, new_value=f'"a{char}b"'.replace("\x00", "\\0"))
    elif kind == 1:
        case.text = _edit_line(rng, case.text, new_value=f"a{char}b")
    elif kind == 2:
        case.text = _edit_line(rng, case.text, new_key=lambda key: key + char)
    elif kind == 3:
        case.overrides = [f"{leaf}=x{char}y"]
    elif kind == 4:
        case.overrides = [f"{leaf.rpartition('.')[0] or leaf}.a{char}b=1"]
    else:
        case.file_name = f"config{char.replace(chr(0), '')}.yaml"
    return case


def long_strings(rng: random.Random, case: Case, values: Any) -> Case:
    """Very long strings in every position: values, keys, component and variant names, references,
    interpolation paths and resolver names, --set paths and values, file and folder names."""
    n = rng.choice([5_000, 100_000, 1_000_000])
    long, leaf = "x" * n, rng.choice(_leaf_paths(values))
    existing_key = leaf.rpartition(".")[2]
    kind = rng.randrange(15)
    if kind == 0:
        case.text = _edit_line(rng, case.text, new_value=long)
    elif kind == 1:
        case.text = _edit_line(rng, case.text, new_key=lambda key: key + long)  # did-you-mean on a long key
    elif kind in (2, 3, 4):
        key = ("component_key", "variant_key", "instance_key")[kind - 2]
        lines = _lines(case.text)
        at = [i for i, line in enumerate(lines) if line.strip().startswith(key + ":")]
        if at:
            i = rng.choice(at)
            lines[i] = lines[i].partition(":")[0] + ": " + rng.choice([long, existing_key + long])
            case.text = "\n".join(lines)
        else:
            case.overrides = [f"{leaf}={long}"]
    elif kind == 5:
        case.text = _edit_line(rng, case.text, new_value=_yaml_single_quoted("${" + long + "}"))
    elif kind == 6:
        case.text = _edit_line(rng, case.text, new_value=_yaml_single_quoted("${settings." + long + "}"))
    elif kind == 7:
        case.text = _edit_line(rng, case.text, new_value=_yaml_single_quoted("${" + long + ":a}"))
    elif kind == 8:
        case.text = _edit_line(rng, case.text, new_value=_yaml_single_quoted("${oc.env:" + long + "}"))
    elif kind == 9:
        case.overrides = [f"{leaf.rpartition('.')[0] or leaf}.{existing_key}{long}=1"]
    elif kind == 10:
        case.overrides = [f"{leaf}={long}"]
    elif kind == 11:
        case.overrides = [f"{long}=1", f"{long}{long}={long}"]
    elif kind == 12:
        case.file_name = "c" * rng.choice([200, 250, 256, 5_000]) + ".yaml"
    elif kind == 13:
        case.file_name, case.experiments_root = case.base.name, "/tmp/" + "/".join(["e" * 200] * (n // 2000))
    else:
        case.text = case.text.rstrip("\n") + f"\n{existing_key}{long}: 1\n{long}:\n  {long}: {long}\n"
    return case


def _interpolation_units(values: Any) -> list[str]:
    scalars = [".".join(map(str, p)) for p, v in _leaf_items(values) if p and isinstance(v, (int, float, str))
               and not (isinstance(v, str) and "${" in v)][:50] or ["settings"]
    return [
        "${" + scalars[0] + "}", "${" + scalars[-1] + "}", "${nope.x}", "${oc.env:HOME}", "${oc.env:NOPE_X,1}",
        "$", "${", "}", "{", "\\${a}", "${a${b}}", "${oc.decode:${" + scalars[0] + "}}", "${.x}", "${..}", "${}",
        "${:}", "${oc.select:nope,1}", "${settings}", "${cuda_env:RANK}", "a", " ",
    ]


def dense_interpolations(rng: random.Random, case: Case, values: Any) -> Case:
    """A string of thousands of ${...} (valid, unknown, nested, unclosed, escaped) where a number belongs."""
    units = _interpolation_units(values)
    count = rng.choice([100, 1_000, 5_000, 20_000])
    if rng.random() < 0.4:
        text = rng.choice(units) * count
    else:
        text = "".join(rng.choice(units) for _ in range(count))
    if rng.random() < 0.5:
        case.text = _edit_line(rng, case.text, new_value=_yaml_single_quoted(text))
    else:
        case.overrides = [f"{rng.choice(_leaf_paths(values))}={text}"]
    return case


def interpolation_graphs(rng: random.Random, case: Case, values: Any) -> Case:
    """Many interpolations between values: long chains (each resolved inside the one before) in either order,
    thousands of copies of one list or mapping, a wide fan of chains."""
    n = rng.choice([50, 64, 65, 500, 5_000, 30_000])
    kind = rng.randrange(4)
    if kind == 0:  # a chain, first link first: each value reads one defined later
        block = "chain:\n" + "".join(f"  k{i}: ${{chain.k{i + 1}}}\n" for i in range(n)) + f"  k{n}: 1\n"
    elif kind == 1:  # the same chain defined last link first
        block = "chain:\n" + "".join(f"  k{i}: ${{chain.k{i - 1}}}\n" for i in range(n, 0, -1)) + "  k0: 1\n"
    elif kind == 2:
        block = "shared: {a: [1, 2, {b: 3}]}\ncopies:\n" + "".join(f"  c{i}: ${{shared}}\n" for i in range(n))
    else:
        width = max(n // 100, 2)
        block = "fan:\n" + "".join(f"  r{j}_{i}: ${{fan.r{j}_{i + 1}}}\n" for j in range(width) for i in range(60))
        block += "".join(f"  r{j}_60: [1]\n" for j in range(width))
    case.text = case.text.rstrip("\n") + "\n" + block
    return case


def long_set_paths(rng: random.Random, case: Case, values: Any) -> Case:
    """--set paths of thousands of parts: new branches, below an existing value, list indices, empty parts."""
    n = rng.choice([99, 100, 101, 1_000, 10_000, 100_000])
    leaf = rng.choice(_leaf_paths(values))
    parent = leaf.rpartition(".")[0] or leaf
    case.overrides = rng.choice([
        lambda: [".".join(["a"] * n) + "=1"],
        lambda: [f"{parent}." + ".".join(["b"] * n) + "=1"],
        lambda: [".".join(["0"] * n) + "=1"],
        lambda: ["." * n + "=1"],
        lambda: [f"{leaf}" + ".0" * n + "=1"],
        lambda: [f"{leaf}.k{i}=1" for i in range(min(n, 2_000))],
    ])()
    return case


def deep_set_nesting(rng: random.Random, case: Case, values: Any) -> Case:
    """--set values and paths that nest deeply, alone and together, and interpolations of them."""
    depth = rng.choice([50, 99, 100, 101, 1_000, 100_000])
    leaf = rng.choice(_leaf_paths(values))
    half, block = depth // 2, "".join("  " * i + "a:\n" for i in range(min(depth, 3_000)))
    path = ".".join(["d"] * min(depth, 200))
    case.overrides = rng.choice([
        lambda: [f"{leaf}=" + "[" * depth + "]" * depth],
        lambda: [f"{leaf}=" + "{a: " * depth + "1" + "}" * depth],
        lambda: [".".join(["d"] * half) + "=" + "[" * half + "]" * half],  # path and value together
        lambda: [f"{leaf}={block}" + "  " * depth + "b"],  # block style
        lambda: [f"{path}=1", f"{leaf}=${{{path}}}", "e=${d}"],  # and interpolated
    ])()
    return case


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
# Families that change a whole case (text, flags, file name, command-line folders).
CASE_FAMILIES: dict[str, Callable[[random.Random, Case, Any], Case]] = {
    "non_utf8": non_utf8,
    "control_chars": control_chars,
    "long_strings": long_strings,
    "dense_interpolations": dense_interpolations,
    "interpolation_graphs": interpolation_graphs,
    "long_set_paths": long_set_paths,
    "deep_set_nesting": deep_set_nesting,
}
FAMILIES = [*TEXT_FAMILIES, "structure", "set_flags", "plausible", "extends", *CASE_FAMILIES]


def make_case(family: str, seed: int, base: Path) -> Case:
    from modalities.config.load import load_text

    rng = random.Random(f"{family}:{seed}:{base.name}")
    text = base.read_text(encoding="utf-8")
    if family in TEXT_FAMILIES:
        return Case(family, seed, base, TEXT_FAMILIES[family](rng, text))
    values = load_text(text, str(base), merge_tags=True).values  # a file with `extends`: its own part
    if family in CASE_FAMILIES:
        return CASE_FAMILIES[family](rng, Case(family, seed, base, text), values)
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


def _write_case(case: Case, folder: Path) -> Path:
    """The case as a file in ``folder``, its text's lone surrogates written as the bytes they stand for. A name
    the file system refuses (too long) leaves no file: the command must then say so cleanly."""
    path = folder / case.file_name
    try:
        path.write_bytes(case.text.encode("utf-8", "surrogateescape"))
    except (OSError, ValueError):
        pass
    return path


def compile_case(case: Case, root: str | None = "auto", registry=None):
    """The case compiled as `modalities validate` (root "auto") or `modalities train` (root "training") compile
    it. The text is read as if it were the base config (same folder), so its relative paths still point at real
    files (and the files it extends are found); an `extends` case's overlay and files are read as texts beside
    it; a case of the command-line families is a real file in a temporary folder. Raises ConfigError where the
    compiler does."""
    from modalities.config.compiler import compile_document, compile_file, resolve
    from modalities.config.compose import compose_files

    if case.on_disk:
        with tempfile.TemporaryDirectory() as folder:
            return compile_file(
                _write_case(case, Path(folder)), registry, overrides=case.overrides, experiment_id="fuzz",
                experiments_root=case.experiments_root, last_checkpoint_info=case.last_checkpoint_info, root=root,
            )
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


def run_cli(case: Case, output: str = "text") -> tuple[int, str, str]:
    """`modalities validate` run in this process on the case's file, as a shell would run it: (exit status,
    stdout, stderr). Both streams are strict UTF-8, so text a terminal could not take (a lone surrogate) raises
    here instead of being escaped on the way out."""
    import contextlib
    import io
    import tempfile

    from modalities.cli.main import main

    with tempfile.TemporaryDirectory() as folder:
        path = _write_case(case, Path(folder)) if case.on_disk else case.base
        argv = ["validate", str(path), *(f"--set={flag}" for flag in case.overrides)]
        argv += [f"--experiments-root={case.experiments_root}"] if case.experiments_root else []
        argv += [f"--last-checkpoint-info={case.last_checkpoint_info}"] if case.last_checkpoint_info else []
        argv += {"text": [], "json": ["--format=json"], "resolved": ["--print-resolved"]}[output]
        out, err = io.BytesIO(), io.BytesIO()
        stdout, stderr = (io.TextIOWrapper(stream, encoding="utf-8", errors="strict") for stream in (out, err))
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(argv)
        stdout.flush()
        stderr.flush()
    return status, out.getvalue().decode("utf-8"), err.getvalue().decode("utf-8")


# What a terminal must never receive from a message: C0 controls but newline and tab, DEL, C1 controls, line and
# paragraph separators, bidirectional overrides and isolates, lone surrogates.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
MAX_RENDERED_LINE = 2_000


def check_output(text: str, what: str, cut_lines: bool = True) -> None:
    match = _UNPRINTABLE.search(text)
    if match:
        raise OracleViolation(f"{what} holds the raw character {match.group()!r} at {match.start()}")
    longest = max(map(len, text.split("\n")), default=0)
    if cut_lines and longest > MAX_RENDERED_LINE:
        raise OracleViolation(f"{what} holds a line of {longest:,} characters")


def check_case(case: Case) -> int:
    """The oracle: raises OracleViolation unless validate ends in 0, or in 1 with every error positioned and
    rendered printable (no raw control characters or lone surrogates, lines and long values cut); returns the
    exit code. A case of the command-line families is also run through the command itself."""
    from modalities.config.diagnostics import ERROR, render_json, render_text

    code, diagnostics = run_validate(case)
    errors = [d for d in diagnostics if d.severity == ERROR]
    if code == 1 and not errors:
        raise OracleViolation("exit 1 without an error")
    for d in diagnostics:
        if d.code == "contract-failed":
            raise OracleViolation(f"a run-contract check crashed: {d.message}")
    for d in errors:
        # An error about the config file itself (missing, unreadable) has no position inside it.
        if d.span is None and d.code != "config-file" and str(case.base) not in d.message:
            raise OracleViolation(f"an error without a position: {d.message}")
        if not d.message:
            raise OracleViolation("an error without a message")
    text = render_text(diagnostics)
    if len(text) > 200_000:
        raise OracleViolation(f"{len(text):,} characters of diagnostics")
    check_output(text, "the rendered diagnostics")
    check_output(render_json(diagnostics), "the JSON diagnostics")
    if case.on_disk:
        output = ("text", "json", "resolved")[case.seed % 3]
        status, stdout, stderr = run_cli(case, output)
        if status != code:
            raise OracleViolation(f"`modalities validate` exits {status}, the compiler said {code}")
        check_output(stderr, f"the diagnostics of `modalities validate` ({output})")
        # The resolved config is data, not a message: its long values stay whole (escaped by the YAML writer).
        check_output(stdout, f"the output of `modalities validate` ({output})", cut_lines=output != "resolved")
    return code
