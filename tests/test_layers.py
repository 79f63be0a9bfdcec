"""calpipe's layers: every import goes down (or stays inside its own package)."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "calpipe"

# Bottom first. A module may import its own package and anything on a lower line.
LAYERS = [
    {"calpipe", "calpipe.errors", "calpipe.dqflags", "calpipe.detector", "calpipe.atomic", "calpipe.resources",
     "calpipe._lazy", "calpipe.compile_notice", "calpipe.memory"},
    {"calpipe.kernels"},
    {"calpipe.precompile"},
    # Association files are plain JSON; the datamodels' association container reads them.
    {"calpipe.associations"},
    {"calpipe.datamodels"},
    {"calpipe.references"},
    {"calpipe.training"},
    {"calpipe.model"},
    {"calpipe.archive"},
    {"calpipe._stpipe_hooks", "calpipe.step"},
    {"calpipe.steps"},
    {"calpipe.pipelines"},
    {"calpipe.batch"},
    {"calpipe.simulate", "calpipe.truth"},
    {"calpipe.cli", "calpipe.integration"},
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(module):
    """The layer unit of a dotted module name: its package under calpipe, or the module."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def imports_of(path):
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            targets = [f"{name}.{alias.name}" for alias in node.names] if name == "calpipe" else [name]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == "calpipe":
                yield module, target if target.split(".")[1:2] != ["__version__"] else "calpipe"


def module_name(path):
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def test_every_module_has_a_layer():
    units = {unit_of(module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert units <= set(RANK), f"place these in LAYERS: {sorted(units - set(RANK))}"


def test_imports_only_go_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, target in imports_of(path):
            src, dst = unit_of(module), unit_of(target)
            if src != dst and RANK.get(dst, -1) > RANK.get(src, -1):
                upward.append(f"{module} imports {target}")
    assert not upward, "imports going up the layers:\n" + "\n".join(upward)


def test_kernels_load_without_asdf_or_stpipe():
    code = ("import sys, calpipe.kernels.ramp, calpipe.kernels.saturation, calpipe.kernels.linearity, "
            "calpipe.kernels.refpix, calpipe.kernels.image; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'asdf', 'stpipe', 'sqlalchemy'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "calpipe"
    (fake / "kernels").mkdir(parents=True)
    (fake / "kernels" / "bad.py").write_text("from calpipe.step import CalStep\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    found = [(m, t) for m, t in imports_of(fake / "kernels" / "bad.py")]
    assert found == [("calpipe.kernels.bad", "calpipe.step")]
    assert RANK[unit_of("calpipe.step")] > RANK[unit_of("calpipe.kernels.bad")]
