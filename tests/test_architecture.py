"""The package's shape, checked by walking every import (ast), so it stays as
docs/ARCHITECTURE.md draws it.

- Layers, imports in one direction only (a layer imports its own and the ones below):
  core < cost < analysis < presentation < session < commands < the entry points
  (harness/__init__.py, harness/__main__.py).
- kernels/ imports the core and the cost model only (the workload API, the pinned-thread
  and system readers, the formulas it declares its cost with); nothing in harness/ imports
  kernels/: the harness reaches kernels by name through the registry (harness.core.registry).
- No import circle between project modules.
- No module over MAX_LINES lines.
- Imports at the top of modules; inside a function only a heavy optional library (or a
  project module that imports one at its top), deferred on purpose, in a module whose text
  says so ("deferred" or "imported inside functions").
- No private name (_x) imported from another module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["harness.core", "harness.cost", "harness.analysis", "harness.presentation", "harness.session",
          "harness.commands"]
MAX_LINES = 600
# Libraries heavy enough to defer: starting them costs seconds or fixes settings (thread
# pools, NUMBA_CPU_FEATURES, CUDA simulation) that must be set before they start.
HEAVY = {"torch", "numba", "onnxruntime", "onnx", "onnxscript", "matplotlib", "scipy", "llvmlite", "pyarrow",
         "pytest_benchmark", "tqdm", "threadpoolctl", "cupy", "ray", "sklearn"}
DEFERRAL_WORDS = ("deferred", "imported inside functions", "imported on first use")


def modules() -> dict[str, Path]:
    found = {}
    for package in ("harness", "kernels"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = modules()


def imports_of(path: Path) -> list[tuple[str, str, bool, int]]:
    """(imported module, name or '', inside a function, line) for every import in the file."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((alias.name, "", in_function, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    full = f"{child.module}.{alias.name}"
                    # `from harness.core import system` imports a module; `from x import name` a name
                    target = full if full in MODULES else child.module
                    out.append((target, alias.name, in_function, child.lineno))
            visit(child, nested)

    visit(tree, False)
    return out


def project(name: str) -> str | None:
    """The project module an import names (a module or the package holding the name), else None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def layer_of(module: str) -> int:
    if module.startswith("kernels"):
        return -1
    for i, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return i
    return len(LAYERS)  # harness itself and harness.__main__: the entry points


def test_every_module_is_in_a_layer():
    for module in MODULES:
        if module.startswith("harness."):
            assert layer_of(module) < len(LAYERS) or module == "harness.__main__", module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    mine = layer_of(module)
    for target, _, _, line in imports_of(MODULES[module]):
        other = project(target)
        if other is None or other == module:
            continue
        where = f"{MODULES[module].relative_to(ROOT)}:{line} imports {other}"
        if module.startswith("kernels"):
            assert other.startswith(("kernels", "harness.core", "harness.cost")), \
                f"{where}: kernels may import only the core and the cost model"
            continue
        assert not other.startswith("kernels"), f"{where}: the harness reaches kernels through the registry"
        assert layer_of(other) <= mine, f"{where}: an upward import ({LAYERS[layer_of(other)]} is above)"


def test_no_import_circles():
    graph = {m: {project(t) for t, _, _, _ in imports_of(p)} - {None, m} for m, p in MODULES.items()}
    # Tarjan's strongly connected components: any component of more than one module is a circle.
    index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            strong(v)
    assert circles == [], f"import circles: {circles}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"


def _heavy(target: str) -> bool:
    if target.split(".")[0] in HEAVY:
        return True
    other = project(target)
    if other is None:
        return False
    return any(t.split(".")[0] in HEAVY and not inside for t, _, inside, _ in imports_of(MODULES[other]))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_are_at_the_top_unless_a_heavy_library_is_deferred_on_purpose(module):
    path = MODULES[module]
    deferred = [(t, line) for t, _, inside, line in imports_of(path) if inside]
    if module == "harness.commands.entry":  # installs the early signal handler before importing everything
        deferred = [(t, line) for t, line in deferred if t != "harness.commands.cli"]
    for target, line in deferred:
        assert _heavy(target), f"{path.relative_to(ROOT)}:{line}: import {target} belongs at the top of the module"
    if deferred:
        text = path.read_text().lower()
        assert any(word in text for word in DEFERRAL_WORDS), \
            f"{path.relative_to(ROOT)} defers imports ({deferred[0][0]}...) without saying so"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_is_imported_from_another_module(module):
    for target, name, _, line in imports_of(MODULES[module]):
        if project(target) and name.startswith("_") and not name.startswith("__"):
            pytest.fail(f"{MODULES[module].relative_to(ROOT)}:{line} imports the private {name} from {target}")
