"""The only place calpipe reaches into stpipe's private command-line module.

stpipe 1.x offers no public seam for two things ``strun`` users rely on:

- Dashed options. stpipe spells every option with underscores; users of the observatories'
  pipelines type ``--output-dir`` and ``--ref-store``. The parser builder is wrapped so that an
  unknown dashed option is read as its underscored twin.
- One line per user error. ``strun`` prints a traceback for every exception but its exit
  exception, and boxes with the whole help text around a bad parameter. The step builder is
  wrapped so that a user's mistake (a bad parameter value or parameter file, a
  :class:`~calpipe.errors.CalpipeError`, a file system refusal) prints ``<alias>: error:
  <message>`` once and exits with status 2, and the step it builds is marked as the
  command line's: :meth:`calpipe.step.CalStep.run` reports errors that way for that step
  object alone. Python callers always get the exception itself.

  A parameter file so damaged that stpipe cannot tell which step it is for fails before
  calpipe is imported, so stpipe reports it itself.

``tests/test_stpipe_hooks.py`` fails loudly when stpipe moves or changes these functions.
stpipe is pinned below 2 for them.
"""

import contextlib
import functools
import io
import sys

from stpipe import _cmdline
from stpipe.config_parser import ValidationError as ParameterError
from stpipe.exceptions import StpipeExitException

from calpipe.errors import EXIT_STATUS, CalpipeError, describe_os_error

HOOKED = ("_build_arg_parser_from_spec", "_build_step_from_args")
"""The private functions of ``stpipe._cmdline`` wrapped here."""

_COMMAND_LINE = "_calpipe_command_line"


def stpipe_function(name):
    """The function of stpipe's command-line module called ``name`` as it is now (wrapped or
    not), or None when stpipe no longer has it."""
    return getattr(_cmdline, name, None)


def parser_for(step_class):
    """The ``strun`` argument parser of ``step_class``, as stpipe builds it."""
    return _cmdline._build_arg_parser_from_spec(step_class.load_spec_file(), step_class,
                                                parent=_cmdline._build_parent_arg_parser())


def is_command_line_run(step):
    """True for the outermost step that ``strun`` built from its command line."""
    return getattr(step, _COMMAND_LINE, False)


def user_message(err):
    """One line for an exception a user caused, or None for a defect (keep its traceback)."""
    if isinstance(err, CalpipeError):
        return str(err)
    if isinstance(err, ParameterError) or (isinstance(err, ValueError) and isinstance(
            err.__cause__, ParameterError)):
        return "bad parameter: " + " ".join(str(err).split())
    if type(err).__module__.startswith("configobj"):
        return "unreadable parameter file: " + " ".join(str(err).split())
    if isinstance(err, OSError):
        return describe_os_error(err)
    return None


def report(command, err):
    """Print the user's one line for ``err`` and return the exit status, or None for a defect."""
    message = user_message(err)
    if message is None:
        return None
    print(f"{command}: error: {message}", file=sys.stderr)
    return EXIT_STATUS


def _underscored(parser, argument):
    if not argument.startswith("--") or "-" not in argument[2:]:
        return argument
    name, sep, value = argument.partition("=")
    known = parser._option_string_actions
    if name in known:
        return argument
    twin = "--" + name[2:].replace("-", "_")
    return twin + sep + value if twin in known else argument


def install():
    """Wrap stpipe's parser and step builders (idempotent)."""
    build_parser = _cmdline._build_arg_parser_from_spec
    if getattr(build_parser, "_calpipe", False):
        return

    @functools.wraps(build_parser)
    def build_accepting_dashes(*args, **kwargs):
        parser = build_parser(*args, **kwargs)
        parse = parser.parse_args

        def parse_args(argv=None, namespace=None):
            if argv is not None:
                argv = [_underscored(parser, a) for a in argv]
            return parse(argv, namespace)

        parser.parse_args = parse_args
        return parser

    build_step = _cmdline._build_step_from_args

    @functools.wraps(build_step)
    def build_step_reporting_errors(step_class, *args, **kwargs):
        # stpipe prints a box and the whole help text before re-raising a bad parameter:
        # hold its output back, and print it only if the step was built after all.
        held = io.StringIO()
        try:
            with contextlib.redirect_stdout(held):
                step, positional = build_step(step_class, *args, **kwargs)
        except Exception as err:
            command = getattr(step_class, "class_alias", None) or step_class.__name__
            status = report(command, err)
            if status is None:
                sys.stdout.write(held.getvalue())
                raise
            raise StpipeExitException(status, str(err)) from None
        sys.stdout.write(held.getvalue())
        setattr(step, _COMMAND_LINE, True)
        return step, positional

    build_accepting_dashes._calpipe = True
    _cmdline._build_arg_parser_from_spec = build_accepting_dashes
    _cmdline._build_step_from_args = build_step_reporting_errors
