"""The shape of the house, checked: the packages of `rag/` are the stages of the picture in the README, each
imports only the stages below it (never one above, never its sibling), and no module imports itself back
through others. Every import counts, also those inside functions and under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

RAG = Path(__file__).resolve().parent.parent / "rag"

# Top to bottom. A stage may import the stages below it and its own modules; stages on one row are siblings
# and import neither the other.
LAYERS: list[set[str]] = [
    {"front"},  # rag/__init__.py and rag/__main__.py: the package's front door
    {"serve"},
    {"evaluate"},
    {"api"},
    {"build", "search"},
    {"index", "models"},
    {"ingest"},
    {"citations"},  # passages and answers as citations and export files: read by the CLI, the chat, programs
    {"text", "records", "errors"},
]
LEVEL = {stage: level for level, stages in enumerate(LAYERS) for stage in stages}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(RAG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> str:
    parts = module.split(".")
    if module in ("rag", "rag.__main__"):
        return "front"
    return parts[1]


def imports_of(path: Path) -> set[str]:
    """Every rag module `path` imports: `from rag.x import y` names rag.x.y when that is a module of ours."""
    known = MODULES
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "rag")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("rag"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
    return {m for m in found if m in known}


FILES = {module_name(p): p for p in RAG.rglob("*.py")}
MODULES = set(FILES)
GRAPH = {module: imports_of(path) for module, path in FILES.items()}


def test_every_module_belongs_to_a_stage_of_the_picture():
    assert {stage_of(m) for m in MODULES} == set(LEVEL)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a stage above the importer's, or of a sibling stage."""
    return sorted(
        f"{module} imports {target} ({stage_of(target)})"
        for module, targets in graph.items()
        for target in targets
        if stage_of(target) != stage_of(module) and LEVEL[stage_of(target)] <= LEVEL[stage_of(module)]
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_a_stage_imports_only_the_stages_below_it():
    wrong = upward_imports(GRAPH)
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_back():
    assert not cycles(GRAPH)


def test_the_checks_catch_what_they_look_for():
    """On the real graph with one wrong import added, each check names it."""
    with_upward = {**GRAPH, "rag.index.store": GRAPH["rag.index.store"] | {"rag.search.searcher"}}
    assert upward_imports(with_upward) == ["rag.index.store imports rag.search.searcher (search)"]
    sideways = {**GRAPH, "rag.build.plan": GRAPH["rag.build.plan"] | {"rag.search.request"}}
    assert upward_imports(sideways) == ["rag.build.plan imports rag.search.request (search)"]
    looped = {**GRAPH, "rag.build.plan": GRAPH["rag.build.plan"] | {"rag.build.cluster"}}
    assert cycles(looped) == [["rag.build.cluster", "rag.build.plan"]]
    assert "rag.evaluate" in GRAPH["rag.serve.cli"], "imports made inside functions (`rag eval`) count too"
