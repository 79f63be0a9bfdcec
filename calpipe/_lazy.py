"""Package attributes imported on first use (PEP 562), so that importing a package is cheap."""

import importlib


def exports(package, modules):
    """``__getattr__`` and ``__dir__`` for ``package`` whose name ``X`` lives in submodule
    ``modules[X]``."""

    def __getattr__(name):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{modules[name]}"), name)

    def __dir__():
        return sorted(modules)

    return __getattr__, __dir__
