"""Instruction-tuning preparation's contracts: the split drawn as Python's random.choices draws it (re-done in
the test), the files' names, the chat template's sandbox, and the inputs it refuses, worked out by hand."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from pydantic import ValidationError

from modalities.data.errors import DataError
from modalities.data.instruction_tuning import (
    InstructionTuningDataConfig,
    SplitConfig,
    compile_chat_template,
    config_hash,
    split_and_apply_chat_template,
)

TEMPLATE = "{% for turn in messages %}{{ turn.role or turn['from'] }}: {{ turn.content }}|{% endfor %}"


def _setup(tmp_path, entries: list, splitting: dict | None = None, seed: int = 3, raw_lines: dict | None = None):
    src = tmp_path / "conversations.jsonl"
    lines = [json.dumps(e) for e in entries]
    for i, raw in (raw_lines or {}).items():
        lines[i] = raw
    src.write_text("".join(line + "\n" for line in lines))
    config_file = tmp_path / "apply.yaml"
    config_file.write_text("# the config's own text: its hash names the outputs\n")
    settings = {"src_path": str(src), "dst_path": str(tmp_path / "out" / "chat.jsonl"), "messages_key": "messages"}
    if splitting is not None:
        settings["split_config"] = {"splitting": splitting, "seed": seed}
    config = InstructionTuningDataConfig.model_validate({
        "settings": settings,
        "instruction_data_transformation": {"role_mapping": {"user": "User", "assistant": "Assistant"}},
        "jinja2_chat_template": TEMPLATE,
        "chat_template_data": {},
    })
    return config_file, config


def _conversation(i: int) -> dict:
    return {"id": i, "messages": [{"role": "user", "content": f"q{i}"}, {"from": "assistant", "content": f"a{i}"}]}


@pytest.mark.parametrize(
    "splitting",
    [{"train": 80, "val": 10, "test": 10}, {"train": 100, "val": 0, "test": 0}, {"train": 0, "val": 50, "test": 50},
     {"train": 34, "val": 33, "test": 33}],
)
def test_entries_go_where_random_choices_draws_them(tmp_path, splitting):
    entries = [_conversation(i) for i in range(30)]
    config_file, config = _setup(tmp_path, entries, splitting, seed=7)
    written = split_and_apply_chat_template(config_file, config)

    # re-done here: one draw per entry from the generator seeded once
    random.seed(7)
    drawn = [random.choices(["train", "val", "test"], weights=list(splitting.values()))[0] for _ in entries]
    digest = hashlib.sha256(config_file.read_bytes()).hexdigest()[:7]
    assert config_hash(config_file) == digest
    folder = tmp_path / "out" / f"conversations_{digest}"
    assert written == {name: folder / f"chat_{name}.{digest}.jsonl" for name in ("train", "val", "test")
                       if name in drawn}
    for name, path in written.items():
        ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
        assert ids == [i for i, d in enumerate(drawn) if d == name]
    for name, weight in splitting.items():
        if weight == 0:  # a partition of weight 0 gets no file at all
            assert not (folder / f"chat_{name}.{digest}.jsonl").exists()
    assert (folder / f"instruction_chat_template_config.{digest}.yaml").read_bytes() == config_file.read_bytes()


def test_a_partition_that_draws_no_entry_is_not_returned(tmp_path):
    config_file, config = _setup(tmp_path, [_conversation(0)], {"train": 50, "val": 50, "test": 0}, seed=1)
    random.seed(1)
    drawn = random.choices(["train", "val", "test"], weights=[50, 50, 0])[0]
    assert list(split_and_apply_chat_template(config_file, config)) == [drawn]


def test_without_a_split_everything_goes_to_train_rendered_with_the_roles_renamed(tmp_path):
    config_file, config = _setup(tmp_path, [_conversation(0), _conversation(1)])
    written = split_and_apply_chat_template(config_file, config)
    assert list(written) == ["train"]
    entries = [json.loads(line) for line in written["train"].read_text().splitlines()]
    assert [e["chat"] for e in entries] == ["User: q0|Assistant: a0|", "User: q1|Assistant: a1|"]
    assert entries[0]["messages"] == [{"role": "User", "content": "q0"}, {"from": "Assistant", "content": "a0"}]


@pytest.mark.parametrize(
    "entries, raw_lines, message",
    [
        ([_conversation(0), {"id": 1}], {}, r"conversations.jsonl:2: no 'messages' \(settings.messages_key\)"),
        ([_conversation(0), {"messages": [{"role": "system", "content": "x"}]}], {},
         (r"conversations.jsonl:2: role 'system' is not in instruction_data_transformation.role_mapping \(user, "
          r"assistant\)")),
        ([{"messages": [{"from": "bot", "content": "x"}]}], {}, r"conversations.jsonl:1: role 'bot' is not in"),
        ([_conversation(0), _conversation(1), _conversation(2)], {2: "{broken"},
         "conversations.jsonl:3: not a JSON line"),
    ],
)
def test_entries_that_cannot_be_rendered_are_named_by_line(tmp_path, entries, raw_lines, message):
    config_file, config = _setup(tmp_path, entries, raw_lines=raw_lines)
    with pytest.raises(DataError, match=message):
        split_and_apply_chat_template(config_file, config)


@pytest.mark.parametrize("total", [99, 101, 0])
def test_a_split_must_add_up_to_100(total):
    with pytest.raises(ValidationError, match=f"splitting percentages must add up to 100, they add up to {total}"):
        SplitConfig.model_validate({"splitting": {"train": total, "val": 0, "test": 0}, "seed": 0})
    assert SplitConfig.model_validate({"splitting": {"train": 98, "val": 1, "test": 1}, "seed": 0}).seed == 0
    with pytest.raises(ValidationError):
        SplitConfig.model_validate({"splitting": {"train": 101, "val": -1, "test": 0}, "seed": 0})


def test_the_chat_template_runs_in_a_sandbox_with_the_references_helpers():
    template = compile_chat_template("{{ value | tojson }}\n{{ 'x' }}")
    assert template.render(value={"a": "ü"}) == '{"a": "ü"}x'  # "}\n{" joined; tojson keeps non-ASCII
    with pytest.raises(Exception, match="no assistant turn"):
        compile_chat_template("{{ raise_exception('no assistant turn') }}").render()
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        compile_chat_template("{{ x.__class__.__mro__ }}").render(x="s")
    with pytest.raises(DataError, match="jinja2_chat_template: "):
        compile_chat_template("{% for %}")


@pytest.mark.parametrize("text, rendered", [
    ("{% if true %}\nx{% endif %}", "x"),  # the newline after a block tag is dropped (trim_blocks)
    ("  {% if true %}x{% endif %}", "x"),  # the spaces before a block tag on its line too (lstrip_blocks)
    ("{% for m in ['a', 'b'] %}\n{{ m }};\n{% endfor %}", "a;\nb;\n"),
    ("a\n{{ 'b' }}", "a\nb"),  # text and expressions keep their newlines
])
def test_the_chat_template_drops_the_whitespace_around_block_tags_as_the_reference(text, rendered):
    assert compile_chat_template(text).render() == rendered


def test_the_chat_template_tojson_takes_jsons_arguments():
    value = {"b": [1, 2], "a": "é"}
    assert compile_chat_template("{{ v | tojson }}").render(v=value) == '{"b": [1, 2], "a": "é"}'
    assert compile_chat_template("{{ v | tojson(sort_keys=true) }}").render(v=value) == '{"a": "é", "b": [1, 2]}'
    assert compile_chat_template("{{ v | tojson(ensure_ascii=true) }}").render(v=value) == \
        '{"b": [1, 2], "a": "\\u00e9"}'
    assert compile_chat_template("{{ v | tojson(separators=[',', ':']) }}").render(v=value) == '{"b":[1,2],"a":"é"}'
    assert compile_chat_template("{{ v | tojson(indent=1) }}").render(v={"a": 1}) == '{\n "a": 1\n}'


def test_rendered_entries_keep_non_ascii_text_as_it_is(tmp_path):
    entry = {"messages": [{"role": "user", "content": "grüße 日本"}]}
    config_file, config = _setup(tmp_path, [entry])
    written = split_and_apply_chat_template(config_file, config)
    line = written["train"].read_text(encoding="utf-8")
    assert "grüße 日本" in line and "\\u" not in line  # the reference writes UTF-8, not \u escapes
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line)["chat"] == "User: grüße 日本|"


@pytest.mark.parametrize(
    "partition, jsonl, expected",
    [
        ("train", "out/chat_train.abc1234.jsonl", "out/pbin_config_train.abc1234.yaml"),
        ("val", "chat_val.0000000.jsonl", "pbin_config_val.0000000.yaml"),
        # the first suffix, as the reference takes it: the hash, unless the name held a dot of its own
        ("test", "x/y.z_test.fffffff.jsonl", "x/pbin_config_test.z_test.yaml"),
    ],
)
def test_a_partitions_pack_config_lies_beside_its_jsonl(partition, jsonl, expected):
    from pathlib import Path

    from modalities.data.instruction_tuning import pack_config_path

    assert pack_config_path(partition, Path(jsonl)) == Path(expected)


def test_a_partitions_pack_config_is_the_template_with_its_paths():
    from pathlib import Path

    from modalities.data.instruction_tuning import pack_config_of

    template = {"settings": {"eod_token": "#", "src_path": "old.jsonl", "num_cpus": 2}, "tokenizer": {"x": 1}}
    config = pack_config_of(template, Path("d/chat_train.abc.jsonl"), Path("d/chat_train.abc.idx"))
    assert config == {
        "settings": {"eod_token": "#", "num_cpus": 2, "src_path": "d/chat_train.abc.jsonl",
                     "index_path": "d/chat_train.abc.idx", "dst_path": "d/chat_train.abc.pbin"},
        "tokenizer": {"x": 1},
    }
    assert template["settings"]["src_path"] == "old.jsonl"  # the template itself is left as it was


@pytest.mark.parametrize("packs", [False, True])
def test_partitions_are_indexed_and_packed_when_a_pack_is_given(tmp_path, packs):
    from modalities.data.instruction_tuning import index_and_pack_partitions
    from modalities.data.raw_index import read_raw_index

    partitions = {}
    for name, lines in (("train", ['{"a": 1}', '{"a": 22}']), ("val", ['{"b": 3}'])):
        partitions[name] = tmp_path / f"chat_{name}.abc.jsonl"
        partitions[name].write_text("".join(line + "\n" for line in lines))
    (tmp_path / "chat_train.abc.idx").write_bytes(b"an older index is replaced")
    calls = []

    def pack(partition, jsonl_path, index_path):
        calls.append((partition, jsonl_path, index_path))
        return tmp_path / f"{partition}.pbin"

    outputs = index_and_pack_partitions(partitions, pack if packs else None)
    expected = {name: {"jsonl": path, "idx": path.with_suffix(".idx")} for name, path in partitions.items()}
    if packs:
        for name, paths in expected.items():
            paths["pbin"] = tmp_path / f"{name}.pbin"
        assert calls == [(name, path, path.with_suffix(".idx")) for name, path in partitions.items()]
    assert outputs == expected
    assert read_raw_index(tmp_path / "chat_train.abc.idx").tolist() == [[0, 8], [9, 9]]
    assert read_raw_index(tmp_path / "chat_val.abc.idx").tolist() == [[0, 8]]
