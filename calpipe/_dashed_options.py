"""Let ``strun`` accept ``--output-dir`` as well as ``--output_dir``.

stpipe builds one command-line option per parameter, spelled with underscores. Users of the
observatories' pipelines type dashes (``--output-dir``, ``--ref-store``); this wraps stpipe's
parser builder so an unknown dashed option is read as its underscored twin. stpipe is pinned
below 2 because the builder is private.
"""

import functools

from stpipe import _cmdline


def _underscored(parser, argument):
    if not argument.startswith("--") or "-" not in argument[2:]:
        return argument
    name, sep, value = argument.partition("=")
    known = parser._option_string_actions
    if name in known:
        return argument
    twin = "--" + name[2:].replace("-", "_")
    return twin + sep + value if twin in known else argument


_state = {"command_line": False}


def from_command_line():
    """True once stpipe has built a command-line parser in this process (a `strun` run)."""
    return _state["command_line"]


def install():
    build = _cmdline._build_arg_parser_from_spec
    if getattr(build, "_calpipe", False):
        return

    @functools.wraps(build)
    def build_accepting_dashes(*args, **kwargs):
        _state["command_line"] = True
        parser = build(*args, **kwargs)
        parse = parser.parse_args

        def parse_args(argv=None, namespace=None):
            if argv is not None:
                argv = [_underscored(parser, a) for a in argv]
            return parse(argv, namespace)

        parser.parse_args = parse_args
        return parser

    build_accepting_dashes._calpipe = True
    _cmdline._build_arg_parser_from_spec = build_accepting_dashes
