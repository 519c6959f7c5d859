"""Plain YAML scalars read as the reference reads them: YAML 1.1.

Modalities loads a config with ``OmegaConf.load``: PyYAML's SafeLoader (YAML 1.1) with OmegaConf's own float
rule added and the timestamp rule taken out. So ``010`` is 8 (octal), ``1:30`` is 90 (base 60), ``on``/``yes``
are true, ``1e3`` is a float, while ``0o17``, ``y`` and ``2001-12-14`` are text. Our parser (ruamel) reads the
structure; the text of each plain scalar is typed here, by the same rules in the same order, so a config means
the same in both. Quoted scalars are always text. The rules below are PyYAML's (resolver.py, constructor.py)
and OmegaConf's (_yaml.py), written out as data; tests/config/test_yaml11.py holds a table checked against
OmegaConf.load.
"""

from __future__ import annotations

import re
from typing import Any

_BOOL = re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+
    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""",
    re.X,
)
# PyYAML's float: a '.' is required (an exponent needs its sign)
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
# OmegaConf's float, tried after PyYAML's rules: adds `1e3`, `1.e5`, `1.0e3` (an exponent without sign)
_OMEGACONF_FLOAT = re.compile(
    r"""^(?:[-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
    |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")

# (tag, rule, the first characters it is tried for), in the order PyYAML tries them
_RULES = (
    ("bool", _BOOL, "yYnNtTfFoO"),
    ("float", _FLOAT, "-+0123456789."),
    ("int", _INT, "-+0123456789"),
    ("merge", re.compile(r"^<<$"), "<"),
    ("null", _NULL, "~nN"),
    ("value", re.compile(r"^=$"), "="),
    ("float", _OMEGACONF_FLOAT, "-+0123456789."),
)
_BOOL_VALUES = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}


def plain_tag(text: str) -> str:
    """The type YAML 1.1 (as OmegaConf.load) gives a plain scalar of ``text``: "str", "int", "float", "bool",
    "null", "merge" (``<<``) or "value" (``=``)."""
    if text == "":
        return "null"
    first = text[0]
    for tag, rule, firsts in _RULES:
        if first in firsts and rule.match(text):
            return tag
    return "str"


def construct(tag: str, text: str) -> Any:
    """The value of a scalar of ``tag`` ("int", "float", "bool" or "null") written ``text``, as PyYAML's
    SafeConstructor makes it (also for an explicit ``!!int 010``). Raises ValueError (or KeyError, IndexError)
    for a text that is not one, e.g. ``0x_`` (which the int rule matches but has no digit)."""
    if tag == "null":
        return None
    if tag == "bool":
        return _BOOL_VALUES[text.lower()]
    if tag == "int":
        return _construct_int(text)
    if tag == "float":
        return _construct_float(text)
    raise ValueError(f"no YAML 1.1 scalar of tag {tag}")


def _sign_and_rest(text: str) -> tuple[int, str]:
    return (-1 if text[0] == "-" else 1), (text[1:] if text[0] in "+-" else text)


def _construct_int(text: str) -> int:
    sign, digits = _sign_and_rest(text.replace("_", ""))
    if digits == "0":
        return 0
    if digits.startswith("0b"):
        return sign * int(digits[2:], 2)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    if digits[0] == "0":
        return sign * int(digits, 8)
    if ":" in digits:
        value = 0
        for part in digits.split(":"):  # base 60, most significant first
            value = value * 60 + int(part)
        return sign * value
    return sign * int(digits)


def _construct_float(text: str) -> float:
    sign, digits = _sign_and_rest(text.replace("_", "").lower())
    if digits == ".inf":
        return sign * float("inf")
    if digits == ".nan":
        return float("nan")
    if ":" in digits:
        value, base = 0.0, 1
        for part in reversed(digits.split(":")):
            value += float(part) * base  # OverflowError once base 60**n leaves the floats, as in PyYAML
            base *= 60
        return sign * value
    return sign * float(digits)


def surprise(text: str, tag: str) -> str | None:
    """What a plain scalar means under YAML 1.1 where YAML 1.2 (and most readers' eyes) would see something else:
    a leading-zero integer is octal, ``a:b`` numbers are base 60. None for every other text."""
    if tag == "int":
        sign, digits = _sign_and_rest(text.replace("_", ""))
        if len(digits) > 1 and digits[0] == "0" and digits[1] not in "bx" and int(digits, 8) != int(digits):
            return "octal"  # 07 or 00 mean the same either way
        if ":" in digits:
            return "base 60"
    if tag == "float" and ":" in text:
        return "base 60"
    return None


def reads_as_text(text: str) -> bool:
    """Whether ``text`` written plain is read back as that text (YAML 1.1, as OmegaConf.load reads it); a
    writer quotes a string for which this is False (``on``, ``010``, ``1:30``, ``1e3``, ``=``, ``''``)."""
    return plain_tag(text) == "str"
