"""`--set dotted.path=value`: what it sets (list items by index, mapping keys spelled as digits, new branches),
what it refuses and with which words, and where later errors about an overridden value point."""

from __future__ import annotations

import pytest

from modalities.config.compiler import resolve
from modalities.config.load import load_text

CONFIG = """\
lst: [10, 20, 30]
empty: []
m: {a: 1, b: [1, 2], "7": seven, 9: nine}
s: text
n: null
"""


def _apply(*flags: str):
    document, diagnostics = resolve(load_text(CONFIG, "f.yaml"), overrides=flags)
    return document, [d.message for d in diagnostics]


def test_list_items_are_set_by_index_and_typed_as_yaml():
    document, problems = _apply("lst.1=99", "lst.0=abc", "m.b.0=[5, 6]", "lst.2=2.5e-3")
    assert not problems
    assert document.values["lst"] == ["abc", 99, 0.0025]
    assert document.values["m"]["b"] == [[5, 6], 2]


def test_a_digit_part_names_a_mapping_key_and_new_branches_are_made():
    document, problems = _apply("m.7=sieben", "m.8=acht", "m.9=neun", "new.branch.leaf=1")
    assert not problems
    assert document.values["m"] == {"a": 1, "b": [1, 2], "7": "sieben", 9: "neun", "8": "acht"}
    assert document.values["new"] == {"branch": {"leaf": 1}}


@pytest.mark.parametrize(
    ("flag", "problem"),
    [
        ("lst.3=1", "'lst' is a list of 3 item(s), indices 0..2; '3' is not one of them"),
        ("lst.-1=1", "'lst' is a list of 3 item(s), indices 0..2; '-1' is not one of them"),
        ("lst.x=1", "'lst' is a list of 3 item(s), indices 0..2; 'x' is not one of them"),
        ("empty.0=1", "'empty' is a list of 0 item(s), no index: it is empty; '0' is not one of them"),
        ("lst.0.a=1", "'lst.0' is a number (10), not a mapping or list, so 'lst.0.a' cannot be set"),
        ("s.x=1", "'s' is a string ('text'), not a mapping or list, so 's.x' cannot be set"),
        ("n.x=1", "'n' is null, not a mapping or list, so 'n.x' cannot be set"),
        ("m.b.2.c=1", "'m.b' is a list of 2 item(s), indices 0..1; '2' is not one of them"),
    ],
)
def test_what_cannot_be_set_is_said_and_nothing_changes(flag, problem):
    document, problems = _apply(flag)
    assert problems == [f"cannot apply --set {flag.split('=')[0]}: {problem}"]
    assert document.values["lst"] == [10, 20, 30] and document.values["m"]["b"] == [1, 2]


def test_errors_about_an_overridden_value_point_at_the_flag(capsys):
    from pathlib import Path

    from modalities.cli.main import main

    quickstart = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    assert main(["validate", str(quickstart), "--set", "optimizer.config.betas.1=abc"]) == 1
    out = capsys.readouterr()
    assert "<--set>:1:26: error: optimizer.config.betas.1: Input should be a valid number" in out.out + out.err
    # and the other item still points at the file
    assert main(["validate", str(quickstart), "--set", "optimizer.config.betas.1=0.5",
                 "--set", "optimizer.config.betas.0=abc"]) == 1
    out = capsys.readouterr()
    assert "<--set>:1:26: error: optimizer.config.betas.0: Input should be a valid number" in out.out + out.err
    assert "betas.1" not in out.out + out.err


def _validate(capsys, *flags: str) -> str:
    from pathlib import Path

    from modalities.cli.main import main

    quickstart = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    args = ["validate", str(quickstart)]
    for flag in flags:
        args += ["--set", flag]
    main(args)
    out = capsys.readouterr()
    return out.out + out.err


def test_an_error_at_an_overridden_key_or_value_underlines_exactly_it(capsys):
    # the key: columns 1..22 of the flag; the value: the 3 characters after '='
    out = _validate(capsys, "optimizer.config.bogus=1")
    assert "<--set>:1:1: error: optimizer.config.bogus: unknown field 'bogus'" in out
    assert "\n      | " + "^" + "~" * 21 + "\n" in out
    out = _validate(capsys, "optimizer.config.betas.1=abc")
    assert "\n      | " + " " * 25 + "^~~\n" in out


def test_a_value_that_is_not_yaml_stays_text_but_a_hostile_one_is_refused(capsys):
    document, problems = _apply("s=b: c: d")  # a YAML syntax error in the value: taken as the text it is
    assert not problems and document.values["s"] == "b: c: d"
    out = _validate(capsys, "optimizer.config.lr=&a [*a]")
    assert ("<--set>:1:21: error: --set optimizer.config.lr: the alias *a refers to a node that contains it "
            "(a value cannot contain itself)") in out
    assert "\n      | " + " " * 20 + "^~~~~~~\n" in out


def test_a_reference_to_the_wrong_kind_names_what_it_points_at(capsys):
    from pathlib import Path

    quickstart = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    line = next(i for i, text in enumerate(quickstart.read_text().splitlines(), 1) if text == "loss_fn:")
    out = _validate(capsys, "optimizer.config.wrapped_model.instance_key=loss_fn")
    assert (f"error: optimizer.config.wrapped_model: expected a 'model' component, but 'loss_fn' "
            f"(loss/clm_cross_entropy_loss, {quickstart}:{line + 1}:3) produces 'loss'") in out


def test_a_failing_run_check_is_a_warning_not_a_crash(capsys, monkeypatch):
    import modalities.training.contract as contract

    def broken(view):
        raise RuntimeError("boom")

    monkeypatch.setattr(contract, "check_training_run", broken)
    from modalities.registry import default_registry

    for root in default_registry().roots.values():
        monkeypatch.setattr(root, "_contract", None, raising=False)
    out = _validate(capsys)
    assert ("warning: the training run's checks failed (RuntimeError: boom); the components were checked one by "
            "one, but not against each other") in out
