"""The package's shape (DESIGN.md): no import cycles, the bytes core never reaches an edge, one
room for explicit labels. Read from the source with ast: imports inside functions count too
(a lazy import is still a dependency); those under ``if TYPE_CHECKING:`` don't."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "labeler"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(package: str, tree: ast.Module, modules: dict[str, Path]) -> set[str]:
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    edges: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            edges.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - max(node.level - 1, 0)])
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names} & modules.keys()
            if subs:  # `from . import exif`: the submodule, not the package
                edges.update(subs)
            elif target in modules:
                edges.add(target)
        elif (  # importlib.import_module("labeler.x"): an import by name is still a dependency
            isinstance(node, ast.Call)
            and ast.unparse(node.func).endswith("import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in modules
        ):
            edges.add(node.args[0].value)
    return edges


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = _imports(package, ast.parse(path.read_text()), modules) - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    """The formats package importing its plugins is registration, not a cycle: the plugins
    import only their siblings, never ``labeler.formats`` itself."""
    graph = _graph()
    graph["labeler.formats"] = set()  # registration imports (Pillow-plugin style)
    assert _cycles(graph) == []


def test_the_bytes_core_never_imports_an_edge() -> None:
    core = ("labeler.formats", "labeler.aigc", "labeler.xmp", "labeler.provenance", "labeler.signing")
    edges = (
        "labeler.middleware",
        "labeler.wsgi",
        "labeler.proxy",
        "labeler.cli",
        "labeler.batch",
        "labeler.demo",
    )
    graph = _graph()
    for module, imports in graph.items():
        if module.startswith(core):
            assert not {i for i in imports if i.startswith(edges)}, module


def test_explicit_labels_live_in_one_room() -> None:
    """Adding and finding explicit labels is looked up in labeler.explicit's table: nothing else
    imports the per-medium modules' add/find functions."""
    graph = _graph()
    media = {f"labeler.explicit.{m}" for m in ("image", "audio", "video", "documents")}
    outside = {
        module
        for module, imports in graph.items()
        if imports & media and not module.startswith("labeler.explicit")
    }
    assert outside == set()


#: Each wing, and the only modules outside it that may load it (lazily: the wing's extra may be
#: missing). Everything else, the bytes core above all, never reaches a wing.
WING_DOORS = {
    "labeler.watermark": {"labeler.explicit.marking"},  # the mark rides the visible label's re-encode
    "labeler.platform": {"labeler.cli"},  # labeler check
    "labeler.integrations": set(),  # imported by the app that uses it, never by labeler itself
    "labeler.distributed": {"labeler.cli"},  # labeler apply/verify --engine ray
}


def test_wings_stay_off_the_core() -> None:
    """New capabilities (watermark, platform, integrations, distributed) are reached only through
    their doors; imports by name (importlib) count."""
    graph = _graph()
    for module, imports in graph.items():
        for wing, doors in WING_DOORS.items():
            if not module.startswith(wing) and module not in doors:
                assert not {i for i in imports if i.startswith(wing)}, (module, wing)
    assert "labeler.watermark" in graph["labeler.explicit.marking"]  # the door is seen, not hidden
