"""The private stpipe functions calpipe wraps: fail loudly when stpipe changes them."""

import inspect

import pytest

from calpipe import _stpipe_hooks
from calpipe.errors import CalpipeError, InputError
from calpipe.steps import RampFitStep

EXPECTED_PARAMETERS = {
    "_build_arg_parser_from_spec": ["spec", "step_class", "parent"],
    "_build_step_from_args": ["step_class", "config", "name", "config_file", "parser", "known", "args"],
}


@pytest.mark.parametrize("name", _stpipe_hooks.HOOKED)
def test_stpipe_still_has_the_wrapped_function(name):
    function = _stpipe_hooks.stpipe_function(name)
    assert function is not None, f"stpipe no longer has {name}: calpipe/_stpipe_hooks.py needs a new hook"
    original = inspect.unwrap(function)
    assert list(inspect.signature(original).parameters) == EXPECTED_PARAMETERS[name], (
        f"stpipe's {name} changed its signature: review calpipe/_stpipe_hooks.py")
    assert function is not original, f"stpipe's {name} is not wrapped"


def test_dashed_options_are_read_as_underscored():
    parser = _stpipe_hooks.parser_for(RampFitStep)
    args = parser.parse_args(["ramp_fit", "--output-dir", "out", "--ref-store=refs", "--save-jumps=True"])
    assert (args.output_dir, args.ref_store, args.save_jumps) == ("out", "refs", "True")


def test_python_callers_get_the_exception_after_a_command_line_was_built(tmp_path):
    _stpipe_hooks.parser_for(RampFitStep)
    with pytest.raises(CalpipeError):
        RampFitStep().run(str(tmp_path / "missing.asdf"))


def test_user_messages_are_one_line_and_defects_keep_their_traceback():
    assert _stpipe_hooks.user_message(InputError("x.asdf: bad\nthing")) == "x.asdf: bad thing"
    assert _stpipe_hooks.user_message(FileNotFoundError(2, "No such file", "a/b")) == "a/b: No such file"
    assert _stpipe_hooks.user_message(ZeroDivisionError("bug")) is None
