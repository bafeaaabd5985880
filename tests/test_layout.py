"""The package layers import only downward and no module imports itself through others, so that a reader can
learn the code bottom-up and any layer can be used without the ones above it (the README's Layout)."""
from __future__ import annotations

import ast
import os

import pytest

from tests.conftest import ROOT

LAYERS = ("deepfill.utils", "deepfill.models", "deepfill.data", "deepfill.inpainting", "deepfill.tester",
          "deepfill.evaluation", "deepfill.training", "deepfill")
"""The rooms of the library, bottom to top: each may import its own modules and those of the rooms before it.
``deepfill.tester`` (the paper's metrics and the classical baselines) imports nothing of the project, so the
evaluation can build on it; ``deepfill`` itself (``__init__``, ``api``: the Python API) is the top. The
commands (``train.py``, ``test.py``, ``inpaint.py``, ``app.py``), the card's re-export folders (``models/``,
``data/``, ``utils/``, ``tester.py``), ``tools/`` and ``benchmarks/`` sit above the library: nothing in it
imports them."""
REEXPORTS = ("models", "data", "utils", "tester")
PROJECT = {"deepfill", "tools", "benchmarks", *REEXPORTS}


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
    """The room of a library module (None outside the library)."""
    parts = module.split(".")
    if parts[0] != "deepfill":
        return None
    room = ".".join(parts[:2])
    return LAYERS.index(room if room in LAYERS else "deepfill")


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
    assert {"deepfill.models.checkpoint", "deepfill.training.state", "deepfill.utils.config", "deepfill.tester",
            "models", "tester", "train"} <= set(graph)
    assert "deepfill.models.checkpoint_file" in graph["deepfill.models.checkpoint"]


def test_the_card_folders_only_re_export_the_library():
    """``models/``, ``data/``, ``utils/`` and ``tester.py`` keep the card's names as thin re-exports: they
    define nothing (one definition of each concept, in ``deepfill``) and every name they export exists."""
    import importlib
    for name in REEXPORTS:
        path = os.path.join(ROOT, name, "__init__.py") if name != "tester" else os.path.join(ROOT, "tester.py")
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        defined = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        assert not defined, f"{path} defines {defined}: the definition belongs in deepfill"
        imported = {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
        assert imported and all(module.startswith("deepfill.") for module in imported), imported
        module = importlib.import_module(name)
        for exported in getattr(module, "__all__", []):
            assert getattr(module, exported) is not None


def test_the_library_installs_under_one_name():
    """The wheel holds the package ``deepfill`` alone: no generic top-level ``models`` or ``utils`` in a
    user's site-packages."""
    tomllib = pytest.importorskip("tomllib")
    from setuptools import find_packages
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        setuptools = tomllib.load(handle)["tool"]["setuptools"]
    packages = find_packages(ROOT, **setuptools["packages"]["find"])
    assert all(p == "deepfill" or p.startswith("deepfill.") for p in packages), packages
    assert {"deepfill", "deepfill.models", "deepfill.inpainting", "deepfill.training"} <= set(packages)
    assert "py-modules" not in setuptools
