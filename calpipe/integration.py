"""Entry points for stpipe and asdf. Kept free of step imports so `strun` starts fast."""

from pathlib import Path

# (class path, alias, is_pipeline)
STEPS = [
    ("calpipe.steps.DQInitStep", "dq_init", False),
    ("calpipe.steps.SaturationStep", "saturation", False),
    ("calpipe.steps.RefPixStep", "refpix", False),
    ("calpipe.steps.DarkDecayStep", "dark_decay", False),
    ("calpipe.steps.Wfi18TransientStep", "wfi18_transient", False),
    ("calpipe.steps.LinearityStep", "linearity", False),
    ("calpipe.steps.RampFitStep", "ramp_fit", False),
    ("calpipe.steps.DarkCurrentStep", "dark_current", False),
    ("calpipe.steps.FlatFieldStep", "flat_field", False),
    ("calpipe.steps.PhotomStep", "photom", False),
    ("calpipe.steps.AssignWcsStep", "assign_wcs", False),
    ("calpipe.steps.SourceCatalogStep", "source_catalog", False),
    ("calpipe.steps.TweakRegStep", "tweakreg", False),
    ("calpipe.steps.ScrubStep", "scrub", False),
    ("calpipe.steps.IngestStep", "ingest", False),
    ("calpipe.pipelines.ExposurePipeline", "exposure_pipeline", True),
    ("calpipe.pipelines.TrainingIngestPipeline", "training_ingest", True),
]


def get_steps():
    return list(STEPS)


def get_resource_mappings():
    from asdf.resource import DirectoryResourceMapping

    schemas = Path(__file__).parent / "datamodels" / "schemas"
    return [DirectoryResourceMapping(schemas, "asdf://calpipe.org/schemas/", recursive=True)]


PARAMETER_FILE_META = {
    "author": "calpipe", "origin": "calpipe", "pedigree": "GROUND", "telescope": "ROMAN",
    "instrument": {"name": "WFI"}, "useafter": "2020-01-01T00:00:00",
}


def write_parameter_files(folder):
    """Write ``<alias>.asdf``, the default parameters of every step and pipeline, into ``folder``.

    ``python -m calpipe.integration config`` refreshes the files shipped in ``config/``.
    """
    from importlib import import_module

    import asdf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for class_path, alias, _ in STEPS:
        module, name = class_path.rsplit(".", 1)
        path = folder / f"{alias}.asdf"
        getattr(import_module(module), name)().export_config(path)
        with asdf.open(path, lazy_load=False) as af:
            tree = {k: v for k, v in af.tree.items() if k not in ("asdf_library", "history")}
        tree["meta"] = dict(PARAMETER_FILE_META, description=f"Default parameters of {class_path}",
                            reftype=f"pars-{name.lower()}")
        asdf.AsdfFile(tree).write_to(path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    import sys

    for written in write_parameter_files(sys.argv[1] if len(sys.argv) > 1 else "config"):
        print(written)
