"""colornet's imports run one way (docs/architecture.md).

The graph is read from the source with `ast`, every `import` statement counted,
those inside functions too: a lazy import still ties two modules. An edge goes to
the module an import names (`from colornet.data import images` -> colornet.data.images,
`from colornet import data` -> the package colornet.data), not to the parent packages
Python initialises on the way, which a package's own `__init__` re-exporting its
submodules would otherwise turn into a cycle of one. A string that is exactly a
module's name counts as an import of it too: the argument of `import_module`, or a
submodule's dotted name anywhere (the facade's table of what it imports on first use).
"""

import ast
import pathlib

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "colornet"

# The layers, lowest first: a module may import modules of its own layer or below.
# Every module has one (a test fails on a module missing here); a package's submodules
# share its layer unless they are named themselves.
LAYERS = (
    # Foundations: errors, the method's constants, safe file writes, the console,
    # reading PyTorch files, downloading into the cache.
    (
        "colornet.errors", "colornet.constants", "colornet.version", "colornet.files", "colornet.console",
        "colornet.pth", "colornet.download",
    ),
    # The method's core and the data it is fed: colour, bins, layers, losses, prior, metrics.
    (
        "colornet.color",
        "colornet.bins",
        "colornet.layers",
        "colornet.layers.decode",
        "colornet.layers.soft_encode",
        "colornet.losses",
        "colornet.metrics",
        "colornet.prior",
        "colornet.hints",
        "colornet.data",
        "colornet.data.images",
        "colornet.data.sources",
        "colornet.data.pipelines",
        "colornet.data.tfrecords",
    ),
    ("colornet.models",),  # and every colornet.models.* module
    ("colornet.inference",),
    (
        "colornet.export", "colornet.tflite", "colornet.train", "colornet.recalibrate", "colornet.official",
        "colornet.pretrained", "colornet.official17",
    ),
    ("colornet.predictors",),
    ("colornet.batch", "colornet.video", "colornet.evaluate", "colornet.demo"),
    ("colornet.cli", "colornet"),  # the command line and the package's facade
)
TRAINING = {"colornet.train", "colornet.recalibrate"}
DEPLOYMENT = {
    "colornet.inference", "colornet.export", "colornet.tflite", "colornet.predictors", "colornet.batch",
    "colornet.video",
}


def _modules():
    """`{module name: path}` of every module of the package."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imported(module, source, modules, is_package=False):
    """The package modules that `source`, the text of `module`, imports anywhere."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            # `from A import b` names the module A.b when there is one, else A.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            names = [arg.value for arg in node.args[:1] if isinstance(arg, ast.Constant)]
        elif isinstance(node, ast.Constant) and "." in str(node.value) and node.value in modules:
            names = [node.value]  # a submodule's full name in a table importlib is given
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import colornet.x.y as z` -> the deepest module
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph():
    modules = _modules()
    return {
        name: _imported(name, path.read_text(), modules, path.name == "__init__.py")
        for name, path in modules.items()
    }


def find_cycle(graph):
    """A list `[a, b, ..., a]` of modules importing one another in a circle, or None."""
    state = {}  # absent: not seen; 1: on the current path; 2: done
    path = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def _layer(module):
    """The index in LAYERS of `module`, or of the nearest package above it named
    there (the package `colornet` itself names only the facade); None if neither."""
    name = module
    while name:
        for index, layer in enumerate(LAYERS):
            if name in layer and (name == module or name != "colornet"):
                return index
        name = name.rpartition(".")[0]
    return None


def test_find_cycle_finds_lazy_and_long_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    sources = {
        "colornet.x": "def f():\n    from colornet import y\n",  # lazy
        "colornet.y": "import colornet.x.z as z\n",  # z is a name in x, not a module
        "colornet.w": "from . import x\n",  # relative
    }
    graph = {name: _imported(name, text, sources) for name, text in sources.items()}
    assert graph == {"colornet.x": {"colornet.y"}, "colornet.y": {"colornet.x"}, "colornet.w": {"colornet.x"}}
    assert find_cycle(graph) == ["colornet.x", "colornet.y", "colornet.x"]


def test_names_given_to_importlib_are_imports():
    sources = {
        "colornet": 'import importlib\n_EXPORTS = {"f": "colornet.x"}\n',  # the facade's table
        "colornet.x": 'import importlib\n\ndef f():\n    importlib.import_module("colornet")\n',
        "colornet.y": '"""colornet.x is documented here, not imported."""\nNAME = "colornet"\n',
    }
    graph = {name: _imported(name, text, sources) for name, text in sources.items()}
    assert graph == {"colornet": {"colornet.x"}, "colornet.x": {"colornet"}, "colornet.y": set()}
    assert find_cycle(graph) == ["colornet", "colornet.x", "colornet"]


def test_the_graph_is_read():
    graph = import_graph()
    assert "colornet.data.images" in graph["colornet.data"]
    assert "colornet.inference" in graph["colornet.batch"]
    # Inside a function: tflite's lazy import of the folding module.
    assert "colornet.models.folding" in graph["colornet.tflite"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_has_a_layer():
    unplaced = sorted(module for module in import_graph() if _layer(module) is None)
    assert not unplaced, f"modules in no layer of LAYERS (place them there and in docs/architecture.md): {unplaced}"


def test_layer_of_a_submodule_is_its_package_s():
    assert _layer("colornet.models.folding") == _layer("colornet.models")
    assert _layer("colornet.cli") == _layer("colornet") == len(LAYERS) - 1
    assert _layer("colornet.nothing_like_this") is None  # the facade's layer is not inherited


def test_imports_run_down_the_layers():
    wrong = []
    for module, imported in import_graph().items():
        for target in imported:
            if _layer(target) > _layer(module):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layers of docs/architecture.md: " + "; ".join(sorted(wrong))


@pytest.mark.parametrize("module", sorted(DEPLOYMENT))
def test_deployment_never_imports_training(module):
    graph = import_graph()
    seen, todo = set(), [module]
    while todo:  # everything `module` loads, directly or not
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    assert not seen & TRAINING, f"{module} loads training code: {sorted(seen & TRAINING)}"
