import os


from modalities.config.compiler import resolve
from modalities.config.load import load_text
from modalities.config.resolve import register_resolver


def resolved(text, **kw):
    document, diagnostics = resolve(load_text(text, "f.yaml"), **kw)
    return document, diagnostics


def test_whole_string_keeps_type_and_embedded_becomes_text():
    doc, diags = resolved(
        """
settings: {n: 4, lr: 0.5, flag: true, items: [a, b, c], nested: {k: v}}
x: ${settings.n}
y: "run_${settings.n}_${settings.lr}"
z: ${settings.items.1}
w: ${settings.nested}
f: ${settings.flag}
"""
    )
    assert not diags
    v = doc.values
    assert v["x"] == 4 and type(v["x"]) is int
    assert v["y"] == "run_4_0.5"
    assert v["z"] == "b"
    assert v["w"] == {"k": "v"}
    assert v["f"] is True


def test_chains_of_interpolations_resolve():
    doc, diags = resolved("a: ${b}\nb: ${c.d}\nc: {d: 7}\n")
    assert not diags and doc.values["a"] == 7


def test_a_path_through_an_interpolated_mapping_reads_the_resolved_value():
    # b is itself ${d}: ${b.c} must read c of d's value (this used to end in a TypeError traceback)
    doc, diags = resolved("a: ${b.c}\nb: ${d}\nd: {c: 1}\n")
    assert not diags and doc.values["a"] == 1
    doc, diags = resolved('a: ${b.c.e.1}\nb: {c: "${d}"}\nd: {e: [1, "${f}"]}\nf: \\${x}\nh: ${b.c}\n')
    assert not diags
    assert doc.values["a"] == "${x}"  # an escape resolved once stays literal text
    assert doc.values["h"] == {"e": [1, "${x}"]}
    doc.values["h"]["e"].append(2)
    assert doc.values["d"]["e"] == [1, "${x}"]  # a copy, not the same list
    _, diags = resolved("a: ${b.x}\nb: ${d}\nd: {c: 1}\n")
    assert [d.message for d in diags] == ["${b.x}: 'x' does not exist in b"]
    _, diags = resolved("a: ${b.x}\nb: ${nope}\n")
    assert len(diags) == 1 and "'nope' does not exist" in diags[0].message  # no second error about b.x


def test_interpolation_cycle_is_an_error_with_the_chain():
    doc, diags = resolved("a: ${b}\nb: ${c}\nc: ${a}\n")
    cycles = [d for d in diags if d.code == "interpolation-cycle"]
    assert len(cycles) == 1
    message = cycles[0].message
    assert "a (f.yaml:1:4) -> b (f.yaml:2:4) -> c (f.yaml:3:4) -> a" in message


def test_unknown_path_names_the_missing_part_with_did_you_mean():
    doc, diags = resolved("settings: {sequence_length: 3}\nx: ${settings.sequence_lenght}\n")
    (d,) = diags
    assert "'sequence_lenght' does not exist in settings" in d.message
    assert "sequence_length" in d.hint
    assert (d.span.line, d.span.col) == (2, 4)
    assert ("x",) in doc.unresolved_paths


def test_interpolating_a_component_gives_a_reference():
    doc, diags = resolved(
        """
settings:
  steps: {component_key: number_conversion, variant_key: v, config: {a: 1}}
  block: {inner: {component_key: k, variant_key: v}, n: 1}
x: ${settings.steps}
y: ${settings.block}
"""
    )
    assert not diags
    assert doc.values["x"] == {"instance_key": "settings.steps", "pass_type": "BY_REFERENCE"}
    assert doc.values["y"] == {"inner": {"instance_key": "settings.block.inner", "pass_type": "BY_REFERENCE"}, "n": 1}


def test_component_inside_longer_string_is_an_error():
    _, diags = resolved("s: {component_key: k, variant_key: v}\nx: a_${s}\n")
    assert len(diags) == 1 and "cannot be part of a longer string" in diags[0].message


def test_builtin_resolvers(monkeypatch, tmp_path):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("MY_VAR", "hello")
    doc, diags = resolved(
        """
a: ${cuda_env:LOCAL_RANK}
b: ${cuda_env:RANK}
c: ${cuda_env:WORLD_SIZE}
d: ${node_env:num_cpus}
e: ${env:MY_VAR}
f: ${env:UNSET_VAR_XYZ,12}
g: ${modalities_env:experiment_id}
h: ${modalities_env:experiments_root_path}
""",
        experiment_id="exp1",
        experiments_root=tmp_path,
    )
    assert not diags
    v = doc.values
    assert (v["a"], v["b"], v["c"]) == (0, 0, 1)
    assert v["d"] == os.cpu_count()
    assert v["e"] == "hello" and v["f"] == 12
    assert v["g"] == "exp1" and v["h"] == str(tmp_path.resolve())


def test_cuda_env_reads_torchrun_variables(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "5")
    doc, _ = resolved("a: ${cuda_env:WORLD_SIZE}\nb: ${cuda_env:RANK}\n")
    assert doc.values == {"a": 8, "b": 5}


def test_config_paths(write_config):
    from modalities.config.compiler import load_and_resolve

    path = write_config("a: ${modalities_env:config_file_path}\nb: ${modalities_env:config_folder_path}\n")
    doc, diags = load_and_resolve(path)
    assert not diags
    assert doc.values == {"a": str(path.resolve()), "b": str(path.resolve().parent)}


def test_unknown_resolver_and_bad_argument():
    _, diags = resolved("a: ${cuda_envv:RANK}\nb: ${cuda_env:FOO}\nc: ${env:NOPE_NOT_SET_123}\n")
    messages = [d.message for d in diags]
    assert any("unknown resolver 'cuda_envv'" in m for m in messages)
    assert any("cuda_env knows" in m for m in messages)
    assert any("NOPE_NOT_SET_123" in m for m in messages)
    assert [d.span.line for d in diags] == [1, 2, 3]


def test_user_resolver():
    register_resolver("double", lambda arg, ctx: 2 * int(arg), replace=True)
    doc, diags = resolved("a: ${double:21}\n")
    assert not diags and doc.values["a"] == 42


def test_escaped_interpolation_is_kept_literally():
    doc, diags = resolved("a: 'cost \\${x}'\n")
    assert not diags and doc.values["a"] == "cost ${x}"


def test_omegaconf_resolvers_and_relative_paths(monkeypatch):
    monkeypatch.setenv("MODALITIES_TEST_LR", "0.25")
    monkeypatch.delenv("MODALITIES_TEST_UNSET", raising=False)
    doc, diags = resolved(
        """
a:
  x: 3
  same: ${.x}
  inner:
    up: ${..x}
    top: ${...b}
b: 7
env_text: ${oc.env:MODALITIES_TEST_LR}
env_default: ${oc.env:MODALITIES_TEST_UNSET,16}
env_null: ${oc.env:MODALITIES_TEST_UNSET,null}
env_quoted: ${oc.env:MODALITIES_TEST_UNSET,'a,b'}
decoded: ${oc.decode:${oc.env:MODALITIES_TEST_LR}}
decoded_list: ${oc.decode:'[1, 2]'}
picked: ${oc.select:a.x,5}
fallback: ${oc.select:a.missing,5}
relative_pick: ${oc.select:.b,0}
text: "lr=${oc.env:MODALITIES_TEST_LR} n=${b} none=${c}"
c: null
"""
    )
    assert not diags, [d.message for d in diags]
    v = doc.values
    assert v["a"]["same"] == 3 and v["a"]["inner"]["up"] == 3 and v["a"]["inner"]["top"] == 7
    assert v["env_text"] == "0.25" and type(v["env_text"]) is str  # oc.env gives the text, as OmegaConf
    assert v["env_default"] == 16 and v["env_null"] is None and v["env_quoted"] == "a,b"
    assert v["decoded"] == 0.25 and v["decoded_list"] == [1, 2]
    assert v["picked"] == 3 and v["fallback"] == 5 and v["relative_pick"] == 7
    assert v["text"] == "lr=0.25 n=7 none=None"


def test_omegaconf_resolver_errors_are_positioned():
    doc, diags = resolved("a: 1\nb: ${oc.env:MODALITIES_TEST_UNSET_2}\nc: ${oc.select:nope}\nd: ${.nope}\n")
    messages = {d.path: (d.message, d.span.line) for d in diags}
    assert messages[("b",)][1] == 2 and "MODALITIES_TEST_UNSET_2' is not set" in messages[("b",)][0]
    assert messages[("c",)] == ("${oc.select:nope}: 'nope' does not exist and no default is given", 3)
    assert messages[("d",)][1] == 4 and "'nope' does not exist" in messages[("d",)][0]


INTERPOLATIONS = """\
lst: [10, 20, 30]
m: {a: 1, b: [1, 2]}
n: null
lead: "${lst.1} and more"
tail: "x${lst.0}"
null_in_text: "x ${n} y"
escaped: '\\${lst.0} ${lst.0}'
copy: ${m}
"""


def test_interpolations_inside_text_keep_the_rest_of_the_text():
    doc, diags = resolved(INTERPOLATIONS)
    assert not diags
    v = doc.values
    assert v["lead"] == "20 and more"  # an interpolation at the start does not swallow the rest
    assert v["tail"] == "x10"
    assert v["null_in_text"] == "x None y"  # as OmegaConf, the reference's resolver, writes a null in text
    assert v["escaped"] == "${lst.0} 10"  # the escaped one stays literal, the other is resolved
    assert v["copy"] == {"a": 1, "b": [1, 2]} and v["copy"] is not v["m"]


def test_a_copied_mapping_keeps_the_positions_of_the_original():
    doc, _ = resolved(INTERPOLATIONS)
    # line 2 is `m: {a: 1, b: [1, 2]}`: a's value at column 8, b's second item at column 18
    assert str(doc.source_map.value(("copy", "a"))) == "f.yaml:2:8"
    assert str(doc.source_map.value(("copy", "b", 1))) == "f.yaml:2:18"
    assert str(doc.source_map.value(("copy",))) == "f.yaml:8:7"


def test_what_cannot_be_interpolated_is_said_at_its_value():
    # columns: where each value starts (the opening quote of a quoted one)
    text = INTERPOLATIONS + 'out_of_range: ${lst.5}\nmapping_in_text: "a ${m} b"\nlist_in_text: "a ${lst} b"\n'
    doc, diags = resolved(text)
    found = sorted((str(d.span), d.message, d.hint) for d in diags)
    hint = "interpolate it as the whole value, or point at a scalar"
    assert found == [
        ("f.yaml:10:18", "'${m}' is a mapping or list and cannot be part of a longer string", hint),
        ("f.yaml:11:15", "'${lst}' is a mapping or list and cannot be part of a longer string", hint),
        ("f.yaml:9:15", "${lst.5}: '5' does not exist in lst", None),
    ]
