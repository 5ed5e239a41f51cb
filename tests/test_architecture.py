"""The package's import graph keeps the layers of docs (STYLE): imports point down, no module imports one
that imports it back, and the numpy runtime imports nothing of the rest. Imports made only for type checking
do not count (a callback may name the trainer's type)."""
import grimp
import pytest

# From the top: a module may import its own layer and the layers below it.
LAYERS = [
    ("commands", {"airender.cli", "airender.demo", "airender.demo_lightmaps", "airender.bench", "airender.experiments",
                  "airender.convert", "airender.bake.cli"}),
    ("ship", {"airender.export"}),
    ("many fields", {"airender.tiles", "airender.between"}),
    ("engine and scoring", {"airender.engine", "airender.evaluate", "airender.evaluate_stream", "airender.protocols",
                            "airender.shadow_edges",
                            "airender.sun_picture", "airender.anchors", "airender.presets", "airender.cli_args"}),
    ("models", {"airender.models"}),
    ("field", {"airender.render", "airender.field", "airender.assembly", "airender.nn", "airender.losses", "airender.metrics"}),
    ("data", {"airender.data", "airender.bake", "airender.images"}),
    ("low", {"airender.config", "airender.device", "airender.timing", "airender.sizes", "airender.solar",
             "airender.fileio", "airender.errors", "airender.progress", "airender.checks", "airender.hours",
             "airender.contest_score", "airender.contest_metrics"}),
]
RUNTIME = "airender.runtime"


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("airender", exclude_type_checking_imports=True)


def layer_of(module: str) -> int | None:
    for index, (_, members) in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members):
            return index
    return None


def test_every_module_has_a_layer(graph):
    unplaced = sorted(m for m in graph.modules if m != "airender" and not m.startswith(RUNTIME) and layer_of(m) is None)
    assert not unplaced, f"place these modules in a layer (tests/test_architecture.py and STYLE): {unplaced}"


def test_imports_point_down(graph):
    upward = []
    for module in sorted(graph.modules):
        here = layer_of(module)
        for imported in graph.find_modules_directly_imported_by(module):
            there = layer_of(imported)
            if here is not None and there is not None and there < here:
                upward.append(f"{module} ({LAYERS[here][0]}) imports {imported} ({LAYERS[there][0]})")
    assert not upward, "\n".join(upward)


def test_the_runtime_is_a_leaf(graph):
    outside = sorted((m, i) for m in graph.modules if m.startswith(RUNTIME)
                     for i in graph.find_modules_directly_imported_by(m) if not i.startswith(RUNTIME))
    assert not outside, outside


def test_no_import_cycles(graph):
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(start):  # Tarjan's strongly connected components, iteratively
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert not cycles, cycles
