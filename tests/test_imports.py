"""The import graph of the project's own packages: layers only point down (no cycle anywhere), and the
pipeline never imports what people look at (`delivery` never imports `overview`)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("delivery", "overview", "devtools")  # those present; devtools once it exists


def modules() -> dict[str, Path]:
    """Every module of the packages (migrations aside), by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).with_suffix("")
            if "migrations" in relative.parts:
                continue
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            found[".".join(parts)] = path
    return found


def imported_names(name: str, path: Path) -> set[str]:
    """What a module imports, at its top or inside functions, relative imports resolved: for `from a
    import b`, both `a.b` (when b is a module) and `a`."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package's __init__ counts as the package)."""
    known = modules()
    edges = {}
    for name, path in known.items():
        targets = set()
        for imported in imported_names(name, path):
            # `import a.b.c` also runs a and a.b; only the deepest project module matters for cycles.
            while imported and imported not in known:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan), as a path that shows it."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(_path_through(sorted(group), edges))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _path_through(group: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A cycle inside the group, from its first module back to it, for the failure message."""
    start, members = group[0], set(group)
    path, seen = [start], {start}
    while True:
        current = path[-1]
        following = sorted(t for t in edges[current] if t in members)
        if start in following and len(path) > 1:
            return [*path, start]
        unseen = [t for t in following if t not in seen]
        if not unseen:
            return [*path, start]
        path.append(unseen[0])
        seen.add(unseen[0])


def test_the_packages_import_no_cycle():
    found = cycles(graph())

    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_pipeline_never_imports_the_overview():
    offending = {
        name: sorted(t for t in targets if t == "overview" or t.startswith("overview."))
        for name, targets in graph().items()
        if name == "delivery" or name.startswith("delivery.")
    }

    assert {name: targets for name, targets in offending.items() if targets} == {}


def test_the_cycle_finder_names_a_cycle_and_resolves_relative_imports(tmp_path):
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    module = tmp_path / "x.py"
    module.write_text("def f():\n    from . import y\n    from .z import w\n")

    assert cycles(edges) == [["a", "b", "c", "a"]]
    assert imported_names("pkg.sub.x", module) == {"pkg.sub", "pkg.sub.y", "pkg.sub.z", "pkg.sub.z.w"}
