"""Entry points for stpipe and asdf. Kept free of step imports so `strun` starts fast."""

from pathlib import Path

STEPS = [
    # (class path, alias, is_pipeline)
]


def get_steps():
    return list(STEPS)


def get_resource_mappings():
    from asdf.resource import DirectoryResourceMapping

    schemas = Path(__file__).parent / "datamodels" / "schemas"
    return [DirectoryResourceMapping(schemas, "asdf://calpipe.org/schemas/", recursive=True)]
