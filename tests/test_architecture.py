"""The package's shape, as the code holds it: no import cycles, no private names across
packages, the neural runtime free of the circuit's gain stage, SPICE free of the model it
judges."""
import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "klon"


def module_name(path):
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if "models" not in p.parts}


def is_package(name):
    return MODULES[name].name == "__init__.py"


def imports(name):
    """(imported klon module, the names taken from it, line) for every import in a module,
    at any depth (a function's import runs too); relative imports resolved."""
    tree = ast.parse(MODULES[name].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package(name) else name.split(".")[:-1]
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                if child in MODULES:  # `from klon.pedal import stages`: the module itself
                    found.append((child, [], node.lineno))
                else:
                    found.append((base, [alias.name], node.lineno))
    return [(m, names, line) for m, names, line in found if m == "klon" or m.startswith("klon.")]


def graph():
    """Module -> the klon modules its imports run: the target and the packages above it that
    are not the importer's own (those are loading already when the importer runs)."""
    edges = defaultdict(set)
    for name in MODULES:
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for target, _, _ in imports(name):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                parent = ".".join(parts[:i])
                if parent in MODULES and (parent not in own or parent == target != name):
                    edges[name].add(parent)
    return edges


def package_of(name):
    """The top-level part of klon a module belongs to (klon.pedal.stages: klon.pedal)."""
    return ".".join(name.split(".")[:2])


def test_the_walk_sees_the_package():
    assert {"klon.pedal.centaur", "klon.neural.bank", "klon.core.processor",
            "klon.wdf.tree"} <= set(MODULES)
    assert "klon.pedal.stages" in graph()["klon.neural.kernels"]


def test_no_import_cycles():
    edges = graph()
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_private_names_across_packages():
    crossings = []
    for name in MODULES:
        source = MODULES[name]
        for target, names, line in imports(name):
            if package_of(target) == package_of(name):
                continue
            crossings += [f"{source.relative_to(SRC)}:{line} takes {target}.{n}"
                          for n in names if n.startswith("_")]
        # module._name, where the module came from another package
        tree = ast.parse(source.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target, names, _ in imports(name):
                    if not names and package_of(target) != package_of(name):
                        aliases[target.rsplit(".", 1)[-1]] = target
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                crossings.append(f"{source.relative_to(SRC)}:{node.lineno} reads "
                                 f"{aliases[node.value.id]}.{node.attr}")
    assert crossings == []


def loaded_after(code):
    """The klon modules loaded after running `code` in a fresh interpreter."""
    run = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(m for m in sys.modules "
         "if m.startswith('klon')))"], capture_output=True, text=True, check=True)
    return set(run.stdout.split())


def test_the_neural_runtime_never_loads_the_circuit_gain_stage():
    loaded = loaded_after("import numpy as np\nimport klon.neural\nfrom klon import Centaur\n"
                          "pedal = Centaur(44100, engine='neural')\n"
                          "pedal(np.zeros(1000, np.float32))")
    assert "klon.neural.bank" in loaded
    assert not {m for m in loaded if m == "klon.wdf" or m.startswith("klon.wdf.")}
    assert "klon.pedal.gain_stage" not in loaded


@pytest.mark.parametrize("package", ["klon.spice", "klon.wdf", "klon.dsp", "klon.core"])
def test_lower_layers_import_nothing_above_them(package):
    """SPICE referees the model and imports none of it; wdf, dsp and core are the base the
    pedal and the engines stand on."""
    allowed = {"klon.spice": {"klon.core"}, "klon.wdf": {"klon.core"},
               "klon.dsp": {"klon.core"}, "klon.core": set()}
    for name in MODULES:
        if package_of(name) == package:
            above = {package_of(t) for t, _, _ in imports(name)} - allowed[package] - {package}
            assert not above, f"{name} imports {above}"
