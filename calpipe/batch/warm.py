"""Imported once by the fork server that a local run's worker processes are forked from.

It loads what every task needs before any worker exists: the pipeline with its steps,
kernels and libraries, asdf's extensions (their manifests are parsed from YAML), the
Roman data models when installed, and the data models' schemas. Each worker is then a
copy of a process that has done this work once, instead of doing it in its first task
alongside the other workers. Nothing here may stop the fork server: whatever fails is
left for the tasks, which report it as their own error.
"""

import contextlib


def _warm_up():
    import asdf

    import calpipe.batch.tasks  # noqa: F401
    import calpipe.pipelines  # noqa: F401
    from calpipe.datamodels import load_asdf_extensions
    from calpipe.datamodels.models import MODELS

    load_asdf_extensions()
    with contextlib.suppress(ImportError):
        import roman_datamodels.datamodels  # noqa: F401
    for model in MODELS.values():
        if model.schema_uri():
            asdf.schema.load_schema(model.schema_uri(), resolve_references=True)


with contextlib.suppress(Exception):
    _warm_up()
