"""asdf's installed extensions, loaded with PyYAML's C parser.

The first time asdf needs its extensions it reads every installed package's manifests (and
roman_datamodels, when installed, its own) with ``yaml.safe_load``, PyYAML's pure-Python
parser: about 0.6 s of every process that opens a file. Loading them here with the C parser
gives the same Python objects in about a third of the time (``tests/datamodels/
test_asdf_extensions.py`` checks that every manifest parses the same).
The swap of ``yaml.safe_load`` lasts only while the extensions load.
"""

import functools

import asdf
import yaml


def _c_safe_load(stream):
    return yaml.load(stream, Loader=yaml.CSafeLoader)


@functools.cache
def load_asdf_extensions():
    """Have asdf load its extensions now (once), with the C parser when PyYAML has it.

    Called before calpipe first opens or writes an ASDF file."""
    if not yaml.__with_libyaml__:
        asdf.get_config().extensions
        return
    pure_python = yaml.safe_load
    yaml.safe_load = _c_safe_load
    try:
        asdf.get_config().extensions
    finally:
        yaml.safe_load = pure_python
