import subprocess
import sys
import textwrap

import pytest
from pydantic import BaseModel

from modalities.registry import DuplicateComponentError, Registry, default_registry, register_component
from modalities.registry.registry import RegistryError

from .conftest import REPO, run_cli


class Cfg(BaseModel):
    x: int


def test_registering_a_pair_twice_is_an_error_unless_replace_is_asked():
    registry = Registry()
    registry.register(component_key="k", variant_key="v", custom_component=dict, custom_config=Cfg)
    with pytest.raises(DuplicateComponentError, match="k/v is already registered"):
        registry.register(component_key="k", variant_key="v", custom_component=list, custom_config=Cfg)
    registry.register(component_key="k", variant_key="v", custom_component=list, custom_config=Cfg, replace=True)
    assert registry.get("k", "v").builder_callable() is list


def test_builtin_cannot_be_shadowed_silently():
    with pytest.raises(DuplicateComponentError, match=r"num_samples_from_num_tokens is already registered .*"
                                                      r"pass replace=True to replace it on purpose"):
        default_registry().copy().register(
            component_key="number_conversion",
            variant_key="num_samples_from_num_tokens",
            custom_component=dict,
            custom_config=Cfg,
        )


def test_bad_registrations_are_rejected():
    with pytest.raises(RegistryError, match="component_key must be a non-empty string, got ''"):
        Registry().register(component_key="", variant_key="v", custom_component=dict, custom_config=Cfg)
    with pytest.raises(RegistryError, match="k/v: custom_config must be a pydantic BaseModel class"):
        Registry().register(component_key="k", variant_key="v", custom_component=dict, custom_config=dict)


def test_register_component_lands_in_the_process_registry(monkeypatch):
    import modalities.registry as registry_module

    monkeypatch.setattr(registry_module, "_default", default_registry().copy())  # leave no trace for other tests
    spec = register_component(
        component_key="test_only_kind", variant_key="a", custom_component=dict, custom_config=Cfg, replace=True
    )
    assert default_registry().get("test_only_kind", "a") is spec


def test_validate_imports_only_the_config_modules_it_uses(write_config):
    path = write_config(
        "n: {component_key: number_conversion, variant_key: num_samples_from_num_tokens,"
        " config: {num_tokens: 4, sequence_length: 2}}\n"
    )
    code = textwrap.dedent(
        f"""
        import sys
        from modalities.cli.main import main
        rc = main(["validate", {str(path)!r}])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "numpy", "jsonschema"))
        other_configs = sorted(m for m in sys.modules if m.startswith("modalities.") and m.endswith("config")
                               and not m.startswith(("modalities.config", "modalities.conversion")))
        print("RC", rc, "HEAVY", heavy, "OTHER", other_configs)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert "RC 0 HEAVY [] OTHER []" in out.stdout, out.stdout + out.stderr


PLUGIN_MODULE = '''
from pydantic import BaseModel, Field
from modalities.registry import register_component
from modalities.registry.types import ComponentConfig


class GreeterConfig(ComponentConfig):
    greeting: str = Field(description="What to say.")


def make_greeter(greeting):
    return greeting.upper()


register_component(component_key="greeter", variant_key="loud", custom_component=make_greeter,
                   custom_config=GreeterConfig)
'''

PLUGIN_CONFIG = "g: {component_key: greeter, variant_key: loud, config: {greeting: hi}}\n"


def test_plugin_flag_imports_a_module_before_compiling(tmp_path):
    (tmp_path / "my_plugin.py").write_text(PLUGIN_MODULE)
    (tmp_path / "c.yaml").write_text(PLUGIN_CONFIG)
    env = {"PYTHONPATH": f"{REPO}:{tmp_path}"}
    without = run_cli("validate", str(tmp_path / "c.yaml"), env=env)
    assert without.returncode == 1 and "unknown component_key 'greeter'" in without.stderr
    with_plugin = run_cli("validate", "--plugin", "my_plugin", str(tmp_path / "c.yaml"), env=env)
    assert with_plugin.returncode == 0, with_plugin.stderr
    listing = run_cli("components", "--plugin", "my_plugin", "greeter", env=env)
    assert "loud" in listing.stdout
    missing = run_cli("validate", "--plugin", "no_such_plugin_mod", str(tmp_path / "c.yaml"), env=env)
    assert missing.returncode == 2 and "no_such_plugin_mod" in missing.stderr and "not found" in missing.stderr


def test_installed_entry_point_plugin_is_loaded_automatically(tmp_path):
    package = tmp_path / "pkg"
    (package / "greeter_plugin").mkdir(parents=True)
    (package / "greeter_plugin" / "__init__.py").write_text(PLUGIN_MODULE)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "greeter-plugin"
            version = "0.1"
            [project.entry-points."modalities.plugins"]
            greeter = "greeter_plugin"
            [tool.setuptools]
            packages = ["greeter_plugin"]
            """
        )
    )
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(package)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    assert list(site.glob("greeter_plugin-*.dist-info/entry_points.txt"))
    (tmp_path / "c.yaml").write_text(PLUGIN_CONFIG)
    result = run_cli("validate", str(tmp_path / "c.yaml"), env={"PYTHONPATH": f"{REPO}:{site}"})
    assert result.returncode == 0, result.stderr
    code = (
        "from modalities import Main, load_app_config_dict;"
        f"print(Main(load_app_config_dict({str(tmp_path / 'c.yaml')!r})).build_components()['g'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": f"{REPO}:{site}", "PATH": "/usr/bin:/bin"}, timeout=600)
    assert out.stdout.strip() == "HI", out.stderr
