"""The package's layout: no import cycles, the I/O helpers and the CLI stay leaves.

The import graph is read from the source with `ast` (every ``import`` of a
package module, including the ones inside functions), so that a cycle
hidden behind a lazy import is found too.
"""

import ast
from pathlib import Path

import photutils_clusterclf

PACKAGE = Path(photutils_clusterclf.__file__).parent
NAME = "photutils_clusterclf"


def _module_name(path):
    parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name, path, modules):
    """Package modules that module ``name`` imports (anywhere in its code)."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # ``from .x import y`` imports x, and y too when y is a module.
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph):
    """One import cycle of ``graph`` as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt, stack)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert _cycle(_graph()) is None


def test_leaf_modules():
    graph = _graph()
    assert graph[f"{NAME}.fileio"] == set(), "fileio must import nothing of the package"
    importers = sorted(m for m, deps in graph.items() if f"{NAME}.cli" in deps)
    assert importers == [], f"nothing may import the CLI: {importers}"


def test_every_module_says_its_job():
    for name, path in _modules().items():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc, f"{name} has no module docstring"
        assert "DESIGN.md" not in path.read_text(), f"{name} cites DESIGN.md"


#: The longest a function may be, in lines from its ``def`` to its end,
#: its docstring not counted.
MAX_FUNCTION_LINES = 60


def _function_lengths(source):
    """``(name, first line, length)`` of every function in ``source``, docstrings excluded."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        doc = node.body[0]
        if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
            if isinstance(doc.value.value, str):
                length -= doc.end_lineno - doc.lineno + 1
        found.append((node.name, node.lineno, length))
    return found


def test_function_length_counts_code_not_docstrings():
    source = (
        "def f(\n    a,\n):\n"
        '    """Doc\n\n    more doc.\n    """\n'
        "    x = a\n    return x\n"
        "\n\nasync def g():\n    def inner():\n        pass\n    return 1\n"
    )
    assert _function_lengths(source) == [("f", 1, 5), ("g", 12, 4), ("inner", 13, 2)]


def test_no_long_functions():
    long = [
        f"{path.relative_to(PACKAGE.parent)}:{line} {name} ({length} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, line, length in _function_lengths(path.read_text())
        if length > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: " + "; ".join(long)


def test_scripts_import_names_that_exist():
    # The benchmarks and docs scripts import lazily inside functions, so a
    # name moved in the package breaks them only when that code runs.
    import importlib

    root = PACKAGE.parent
    scripts = sorted((root / "benchmarks").glob("*.py")) + sorted((root / "docs").glob("*.py"))
    assert scripts
    missing = []
    for path in scripts:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith(NAME)):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if (
                    not hasattr(module, alias.name)
                    and f"{node.module}.{alias.name}" not in _modules()
                ):
                    missing.append(f"{path.name}:{node.lineno} {node.module}.{alias.name}")
    assert not missing, "imports of names the package does not have: " + "; ".join(missing)
