"""The quick read of entry_points.txt files (registry/entry_point_files.py) against importlib.metadata, which
reads the same distributions the exact (slow) way: a group is declared for one exactly when it is for the other,
and where the quick read cannot be sure it says so (None)."""

import importlib.metadata
import sys
import zipfile

import pytest
from pydantic import BaseModel

from modalities.registry import Registry
from modalities.registry.entry_point_files import declared_groups
from modalities.registry.plugins import ENTRY_POINT_GROUP, PYDANTIC_PLUGIN_GROUP, load_entry_point_plugins

GROUP = ENTRY_POINT_GROUP

# (name, the distribution's folder, the text of its entry_points.txt or None for no such file)
LAYOUTS = [
    ("dist-info declares it", "a_pkg-1.0.dist-info", "[modalities.plugins]\na = a_pkg\n"),
    ("egg-info declares it", "b_pkg-1.0.egg-info", "[modalities.plugins]\nb = b_pkg\n"),
    ("upper-case suffix", "C_Pkg-1.0.DIST-INFO", "[modalities.plugins]\nc = c_pkg\n"),
    ("header with spaces around", "d_pkg-1.0.dist-info", "  [modalities.plugins]  \nd = d_pkg\n"),
    ("doubled brackets", "e_pkg-1.0.dist-info", "[[modalities.plugins]]\ne = e_pkg\n"),
    (
        "CRLF line ends",
        "f_pkg-1.0.dist-info",
        "[console_scripts]\r\nf = f_pkg:main\r\n[modalities.plugins]\r\nf = f\r\n",
    ),
    ("only named in a value", "g_pkg-1.0.dist-info", "[console_scripts]\ng = modalities.plugins:main\n"),
    ("spaces inside the brackets", "h_pkg-1.0.dist-info", "[ modalities.plugins ]\nh = h_pkg\n"),
    ("a commented header", "i_pkg-1.0.dist-info", "#[modalities.plugins]\n[console_scripts]\ni = i:main\n"),
    ("a longer group name", "j_pkg-1.0.dist-info", "[modalities.plugins.extra]\nj = j_pkg\n"),
    ("another group", "k_pkg-1.0.dist-info", "[console_scripts]\nk = k_pkg:main\n"),
    ("no entry_points.txt", "l_pkg-1.0.dist-info", None),
    ("a folder that is no distribution", "m_pkg", "[modalities.plugins]\nm = m_pkg\n"),
    ("an empty file", "n_pkg-1.0.dist-info", ""),
]


def _write(folder, name, text):
    info = folder / name
    info.mkdir(parents=True)
    stem = name.split("-")[0]
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {stem}\nVersion: 1.0\n")
    if text is not None:
        (info / "entry_points.txt").write_bytes(text.encode())


@pytest.mark.parametrize("name,folder_name,text", LAYOUTS, ids=[layout[0] for layout in LAYOUTS])
def test_a_group_is_declared_exactly_when_importlib_metadata_finds_it(tmp_path, monkeypatch, name, folder_name, text):
    _write(tmp_path, folder_name, text)
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    exact = {group for group in (GROUP, "console_scripts") if importlib.metadata.entry_points(group=group)}
    assert declared_groups([GROUP, "console_scripts"]) == exact


def test_all_layouts_side_by_side_and_an_egg_on_the_path(tmp_path, monkeypatch):
    for _, folder_name, text in LAYOUTS[6:]:  # none of these declares the group
        _write(tmp_path / "site", folder_name, text)
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site"), str(tmp_path / "missing")])
    assert declared_groups([GROUP]) == set() and not importlib.metadata.entry_points(group=GROUP)
    egg = tmp_path / "z_pkg-1.0-py3.11.egg"  # an egg folder's metadata is its EGG-INFO folder
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO" / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: z-pkg\nVersion: 1.0\n")
    (egg / "EGG-INFO" / "entry_points.txt").write_text("[modalities.plugins]\nz = z_pkg\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site"), str(egg)])
    assert declared_groups([GROUP]) == {GROUP} and importlib.metadata.entry_points(group=GROUP)


def test_the_current_folder_is_read_for_an_empty_path_entry(tmp_path, monkeypatch):
    _write(tmp_path, "a_pkg-1.0.dist-info", "[modalities.plugins]\na = a_pkg\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [""])
    assert declared_groups([GROUP]) == {GROUP}


def test_text_that_is_not_utf8_counts_as_declaring_it_so_the_exact_way_reports_it(tmp_path, monkeypatch):
    info = tmp_path / "a_pkg-1.0.dist-info"
    info.mkdir()
    (info / "entry_points.txt").write_bytes(b"[modalities.plugins]\na = \xff\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert declared_groups([GROUP, "console_scripts"]) == {GROUP}


def test_a_zip_on_the_path_or_another_distribution_finder_means_ask_importlib_metadata(tmp_path, monkeypatch):
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a_pkg-1.0.dist-info/entry_points.txt", "[modalities.plugins]\na = a_pkg\n")
    monkeypatch.setattr(sys, "path", [str(archive)])
    assert declared_groups([GROUP]) is None

    class Finder:
        @staticmethod
        def find_distributions(context=None):
            return iter(())

    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing")])
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder])
    assert declared_groups([GROUP]) is None


SEEN_BY_RECORDER: list[str] = []


class _Recorder:
    """A pydantic plugin: records the schema validators pydantic makes while it is installed."""

    def new_schema_validator(self, schema, schema_type, schema_type_path, schema_kind, config, plugin_settings):
        SEEN_BY_RECORDER.append(schema_type.__name__)
        return None, None, None


recorder = _Recorder()


@pytest.mark.parametrize("installed", [False, True], ids=["no pydantic plugin", "a pydantic plugin installed"])
def test_pydantic_plugins_are_found_as_pydantic_finds_them(tmp_path, monkeypatch, installed):
    """Without a distribution declaring pydantic's group, pydantic is told so (its plugin cache set to what its
    own search finds: nothing); with one, pydantic's own search runs and uses the plugin."""
    from pydantic.plugin import _loader

    monkeypatch.setattr(_loader, "_plugins", None)
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    _write(
        tmp_path,
        "a_pkg-1.0.dist-info",
        f"[{PYDANTIC_PLUGIN_GROUP}]\nrecorder = {__name__}:recorder\n"
        if installed
        else "[console_scripts]\na = a_pkg:main\n",
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert load_entry_point_plugins(Registry()) == []
    assert _loader._plugins == (None if installed else {})
    SEEN_BY_RECORDER.clear()

    class Probe(BaseModel):
        x: int

    assert Probe(x=1).x == 1
    assert SEEN_BY_RECORDER == (["Probe"] if installed else [])


def test_a_modalities_plugin_declared_by_an_entry_point_is_loaded(tmp_path, monkeypatch):
    plugin = tmp_path / "probe_plugin.py"
    plugin.write_text("def register(registry):\n    registry.loaded_by_probe = True\n")
    _write(tmp_path, "probe_plugin-1.0.dist-info", "[modalities.plugins]\nprobe = probe_plugin:register\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    registry = Registry()
    assert load_entry_point_plugins(registry) == ["probe_plugin:register"]
    assert registry.loaded_by_probe is True
