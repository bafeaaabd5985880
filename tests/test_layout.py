"""The package layers import only downward and no module imports itself through others, so that a reader can
learn the code bottom-up and any layer can be used without the ones above it (the README's Layout)."""
from __future__ import annotations

import ast
import os

from tests.conftest import ROOT

LAYERS = ("utils", "models", "data", "inpainting", "tester", "evaluation", "training", "deepfill")
"""Bottom to top: each package may import its own modules and those of the layers before it. ``tester.py``
(the paper's metrics and the classical baselines) sits beside the commands but imports nothing of the
project, so the evaluation can build on it. The commands (``train.py``, ``test.py``, ``inpaint.py``,
``app.py``), ``tools/`` and ``benchmarks/`` sit on top."""
PROJECT = set(LAYERS) | {"tools", "benchmarks"}


def project_modules() -> dict[str, str]:
    """Dotted module name → path, for every Python file of the library and its commands (not the tests)."""
    found = {}
    for folder, subfolders, names in os.walk(ROOT):
        relative = os.path.relpath(folder, ROOT)
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in ("tests", "__pycache__")
                         and (relative != "." or d in PROJECT)]
        for name in names:
            if name.endswith(".py"):
                module = os.path.normpath(os.path.join(relative, name[:-3])).replace(os.sep, ".")
                found[module.removesuffix(".__init__")] = os.path.join(folder, name)
    return found


def imports_of(path: str, modules: dict[str, str]) -> set[str]:
    """The project modules ``path`` imports anywhere in it (functions and ``TYPE_CHECKING`` blocks too)."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    named = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            named |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in named if name in modules}


def layer(module: str) -> int | None:
    top = module.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else None


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {module: imports_of(path, modules) - {module} for module, path in modules.items()}


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(module: str) -> None:       # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                circles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"


def test_layers_import_only_downward():
    upward = [f"{module} imports {imported}" for module, imported_set in import_graph().items()
              for imported in imported_set
              if layer(module) is not None and (layer(imported) is None or layer(imported) > layer(module))]
    assert not upward, "\n".join(sorted(upward))


def test_the_check_sees_the_library():
    graph = import_graph()
    assert {"models.checkpoint", "training.state", "utils.config", "tester"} <= set(graph)
    assert "models.checkpoint_file" in graph["models.checkpoint"]
