"""The stpipe registry and the suffix list are kept honest against the step classes."""

import inspect
from importlib import import_module

import pytest
from stpipe import Pipeline

import calpipe.steps
from calpipe.integration import STEPS, get_steps
from calpipe.step import KNOWN_SUFFIXES, PRODUCT_SUFFIXES, CalPipeline, CalStep


def load(class_path):
    module, name = class_path.rsplit(".", 1)
    return getattr(import_module(module), name)


@pytest.mark.parametrize("class_path, alias, is_pipeline", STEPS)
def test_every_registered_alias_is_a_step_class_with_that_alias(class_path, alias, is_pipeline):
    cls = load(class_path)
    assert issubclass(cls, CalStep) and cls.class_alias == alias
    assert issubclass(cls, Pipeline) is is_pipeline


def test_every_step_class_is_registered():
    import calpipe.pipelines

    classes = {
        f"{module.__name__}.{name}"
        for module in (calpipe.steps, calpipe.pipelines)
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, CalStep) and cls not in (CalStep, CalPipeline)
    }
    assert classes == {class_path for class_path, _, _ in get_steps()}


def test_the_suffix_list_is_every_alias_and_product():
    written = {load(class_path)().suffix or alias for class_path, alias, _ in STEPS}
    aliases = {alias for _, alias, _ in STEPS}
    assert KNOWN_SUFFIXES == aliases | written | PRODUCT_SUFFIXES
