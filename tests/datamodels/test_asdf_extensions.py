"""Loading asdf's extensions with PyYAML's C parser: the same manifests, the same extensions."""

import subprocess
import sys

import asdf
import pytest
import yaml

from calpipe.datamodels._asdf_extensions import load_asdf_extensions

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without its C parser")


def test_every_installed_manifest_parses_the_same_with_the_c_parser():
    resources = asdf.get_config().resource_manager
    manifests = [uri for uri in resources if "/manifests/" in uri]
    assert len(manifests) > 10  # asdf's, asdf-astropy's, gwcs's at least
    for uri in manifests:
        text = resources[uri]
        assert yaml.load(text, Loader=yaml.CSafeLoader) == yaml.safe_load(text), uri


def test_the_parser_swap_ends_with_the_loading():
    before = yaml.safe_load
    load_asdf_extensions()
    assert yaml.safe_load is before


EXTENSIONS = "import asdf; print(sorted((e.extension_uri or '', e.package_name, len(e.tags), len(e.converters)) for e in asdf.get_config().extensions))"


def test_asdf_loads_the_same_extensions_as_it_would_alone():
    alone = subprocess.run([sys.executable, "-c", EXTENSIONS], capture_output=True, text=True, check=True)
    ours = subprocess.run(
        [sys.executable, "-c", "from calpipe.datamodels._asdf_extensions import load_asdf_extensions; "
         f"load_asdf_extensions(); {EXTENSIONS}"],
        capture_output=True, text=True, check=True,
    )
    assert ours.stdout == alone.stdout
    assert ours.stdout.count("(") > 20
