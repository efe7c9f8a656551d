"""The package's folders are its architecture, and the imports keep it: every room (a folder, or
a module at the top) stands on a floor and imports only from its own floor's rooms below it,
never up, never in a circle.

   10  __main__
    9  cli/       the commands (click, rich)
    8  serve/     the HTTP server (starlette, uvicorn) and its page
    7  api/       the library: load, LanguageModel, Classifier, train
    6  ui/        what is drawn for the eyes (rich)
    5  training/  the one loop, its tasks, preparation, workers, MPI     export/  PyTorch
    4  checkpoint/  what a checkpoint holds, which one a command reads   analysis/  likelihoods, activations
    3  text/      bytes -> text -> tokens, corpora, labelled lines
    2  store/     files: the atomic writer, the checkpoint container, run directories
    1  config/    the options, declared once as dataclass fields
    0  core/ (the math), errors, blas, the package's __init__

Checked on the source: every import statement, also those inside functions. Only cli/ and ui/
import rich, only cli/ click, only serve/ starlette and uvicorn; core/ imports numpy and the
standard library alone and neither opens files nor prints; `import charrnn` and the library's
calls load neither click nor rich (a fresh interpreter says so).
"""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "charrnn"
STDLIB = set(sys.stdlib_module_names)
FLOORS = [{"core", "errors", "blas", "__init__"}, {"config"}, {"store"}, {"text"}, {"checkpoint", "analysis"},
          {"training", "export"}, {"ui"}, {"api"}, {"serve"}, {"cli"}, {"__main__"}]
FLOOR = {room: n for n, rooms in enumerate(FLOORS) for room in rooms}
THIRD_PARTY = {"click": {"cli"}, "rich": {"cli", "ui"}, "starlette": {"serve"}, "uvicorn": {"serve"},
               "tqdm": {"text"}}  # tqdm: the encoding bar of a large corpus


def modules():
    return sorted(p for p in PKG.rglob("*.py") if "static" not in p.parts)


def room(path):
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def dotted(path):
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """Every module a file imports, as absolute dotted names (relative imports resolved; an
    imported name that is a submodule counts as that module)."""
    package = dotted(path) if path.name == "__init__.py" else dotted(path).rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}")}
    return names


def _is_module(name):
    parts = name.split(".")
    if parts[0] != "charrnn":
        return False
    where = PKG.parent.joinpath(*parts)
    return where.with_suffix(".py").exists() or (where / "__init__.py").exists()


def charrnn_room(name):
    parts = name.split(".")
    if parts[0] != "charrnn":
        return None
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def test_every_module_stands_in_a_room_on_a_floor():
    rooms = {room(p) for p in modules()}
    assert rooms <= set(FLOOR), rooms - set(FLOOR)
    assert {p.name for p in PKG.glob("*.py")} == {"__init__.py", "__main__.py", "errors.py", "blas.py"}


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down_or_sideways_within_a_room(path):
    mine = room(path)
    for name in imports(path):
        other = charrnn_room(name)
        if other is not None and other != mine:
            assert FLOOR[other] < FLOOR[mine], f"{path.relative_to(PKG)} imports {name}: up from floor " \
                                               f"{FLOOR[mine]} ({mine}) to {FLOOR[other]} ({other})"
        root = name.split(".")[0]
        if root in THIRD_PARTY:
            assert mine in THIRD_PARTY[root], f"{path.relative_to(PKG)} imports {root}"


def test_no_module_imports_itself_back_through_others():
    """No circle of imports, within a room or across rooms (depth-first search for a back edge)."""
    graph = {dotted(p): {n for n in imports(p) if _is_module(n) and n != dotted(p)} for p in modules()}
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in graph.get(node, ()):
            if nxt.startswith(node + "."):  # a package importing its own submodules is its business
                continue
            if state.get(nxt) == "open":
                raise AssertionError("circle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("path", sorted((PKG / "core").rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_core_imports_only_numpy_the_standard_library_and_itself(path):
    for name in imports(path):
        root = name.split(".")[0]
        assert root in STDLIB or root == "numpy" or name.startswith("charrnn.core"), f"{path.name}: {name}"
    source = path.read_text(encoding="utf-8")
    for call in ("open(", "print(", "sys.stdout", "sys.stderr"):
        assert call not in source, f"{path.name} touches files or prints: {call}"


def test_the_layout_test_sees_an_upward_and_a_circular_import(tmp_path):
    """The rules above can fail: a planted upward import and a planted circle are found."""
    fake = tmp_path / "charrnn" / "store"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    from charrnn.training import loop\n")
    global PKG
    real, PKG = PKG, tmp_path / "charrnn"
    try:
        (PKG / "training").mkdir()
        (PKG / "training" / "loop.py").write_text("from charrnn.store import bad\n")
        with pytest.raises(AssertionError, match="up from floor 2"):
            test_imports_point_down_or_sideways_within_a_room(fake / "bad.py")
        with pytest.raises(AssertionError, match="circle: "):
            test_no_module_imports_itself_back_through_others()
    finally:
        PKG = real


def test_importing_the_library_loads_neither_click_nor_rich_and_leaves_the_environment_alone(tmp_path):
    """The BLAS thread count is the command line's to pin (charrnn/__main__.py), not an
    import's; a library call without progress draws nothing, so loads no rich."""
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    code = ("import os, sys; before = dict(os.environ); "
            "import charrnn, charrnn.api, charrnn.core.model, charrnn.training.loop, "
            "charrnn.training.lm, charrnn.checkpoint.schema, charrnn.analysis.activations; "
            "m = charrnn.train('t.txt', steps=2, hidden=8, layers=1, batch=2, seq_len=8); "
            "m.generate(length=5, seed=1); m.score('the fox'); "
            "bad = {'click', 'rich'} & set(sys.modules); assert not bad, bad; "
            "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_a_bare_import_loads_not_even_numpy():
    r = subprocess.run([sys.executable, "-c", "import sys, charrnn; assert 'numpy' not in sys.modules; "
                        "print(charrnn.__version__)"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "0.1.0", r.stderr


def test_no_module_of_the_package_is_long():
    """A few hundred lines at most: past that a module holds more than one job."""
    long = {str(p.relative_to(PKG)): n for p in modules() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, long
