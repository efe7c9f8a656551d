"""The package's folders are its architecture, and the imports keep them so.

    core/      the math: numpy and the standard library only; no file, no printing
    text/      bytes -> text -> tokens, corpora, labelled lines (tqdm for the encoding bar)
    store/     the checkpoint file, its schema, run directories, atomic writes
    training/  the one loop, its tasks, configs, setup and workers
    analysis/  likelihoods and activations of a trained model
    ui/        what is drawn for the eyes (rich)
    cli/       the commands (click, rich)
    serve/     the HTTP server of `charrnn serve` (starlette, uvicorn), on the library

Only cli/ and ui/ import click or rich; ui/ never imports click; the library layer (api.py)
neither; only serve/ imports starlette or uvicorn. Checked on the source (every import
statement, also those inside functions), and by importing the pure folders in a fresh
interpreter.
"""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "charrnn"
STDLIB = set(sys.stdlib_module_names)


def imports(path):
    """Every top-level module name a file imports (absolute imports; relative ones are ours)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {f"{node.module}.{a.name}" for a in node.names}  # what is taken: a module, or a name in one
    return names


def files(folder):
    return sorted((PKG / folder).glob("*.py")) if folder else sorted(PKG.glob("*.py"))


def test_every_module_is_in_a_folder_that_says_what_it_holds():
    top = {p.name for p in files("")}
    assert top == {"__init__.py", "__main__.py", "api.py", "blas.py", "errors.py"}
    assert {p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__"} == \
        {"core", "text", "store", "training", "analysis", "ui", "cli", "serve"}


@pytest.mark.parametrize("path", files("core"), ids=lambda p: p.name)
def test_core_imports_only_numpy_the_standard_library_and_itself(path):
    for name in imports(path):
        root = name.split(".")[0]
        assert root in STDLIB or root == "numpy" or name.startswith("charrnn.core"), f"{path.name}: {name}"
    source = path.read_text(encoding="utf-8")
    for call in ("open(", "print(", "sys.stdout", "sys.stderr"):
        assert call not in source, f"{path.name} touches files or prints: {call}"


# what each library folder may import of charrnn besides itself, core and errors (text writes
# its token cache and spools through the one atomic writer; the schema holds the configs)
LAYERS = {"text": {"store.atomic"}, "store": {"text", "training.config"}, "analysis": set(),
          "training": {"text", "store", "analysis", "blas"}, "serve": {"api", "analysis", "store", "text", "blas"}}


@pytest.mark.parametrize("folder", ["text", "store", "training", "analysis", "serve"])
def test_the_library_folders_import_neither_click_nor_rich(folder):
    for path in files(folder):
        for name in imports(path):
            root = name.split(".")[0]
            assert root not in ("click", "rich"), f"{folder}/{path.name}: {name}"
            if name.startswith("charrnn."):
                inner = name[len("charrnn."):]
                allowed = LAYERS[folder] | {folder, "errors", "core", "__version__"}
                assert any(inner == a or inner.startswith(a + ".") for a in allowed), \
                    f"{folder}/{path.name} reaches into charrnn.{inner}"


def test_ui_imports_rich_but_not_click_and_api_neither():
    for path in files("ui"):
        assert not {n for n in imports(path) if n.split(".")[0] == "click" or n.startswith("charrnn.cli")}, path.name
    assert not {n.split(".")[0] for n in imports(PKG / "api.py")} & {"click", "rich"}


def test_click_and_rich_appear_only_in_cli_and_ui():
    for path in PKG.rglob("*.py"):
        folder = path.parent.name
        if folder in ("cli", "ui"):
            continue
        used = {n.split(".")[0] for n in imports(path)} & {"click", "rich"}
        assert not used, f"{path.relative_to(PKG)} imports {used}"


def test_starlette_and_uvicorn_appear_only_in_serve():
    for path in PKG.rglob("*.py"):
        used = {n.split(".")[0] for n in imports(path)} & {"starlette", "uvicorn"}
        assert not used or path.parent.name == "serve", f"{path.relative_to(PKG)} imports {used}"


def test_importing_the_library_loads_neither_click_nor_rich_and_leaves_the_environment_alone():
    """The BLAS thread count is the command line's to pin (charrnn/__main__.py), not an
    import's: a library user's numpy, and every process it starts, keep theirs."""
    code = ("import os, sys; before = dict(os.environ); "
            "import charrnn, charrnn.api, charrnn.core.model, charrnn.training.loop, "
            "charrnn.training.lm, charrnn.store.schema, charrnn.analysis.activations; "
            "charrnn.load, charrnn.train, charrnn.Model; "
            "bad = {'click', 'rich'} & set(sys.modules); assert not bad, bad; "
            "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr


def test_a_bare_import_loads_not_even_numpy():
    r = subprocess.run([sys.executable, "-c", "import sys, charrnn; assert 'numpy' not in sys.modules; "
                        "print(charrnn.__version__)"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "0.1.0", r.stderr


def test_no_module_of_the_package_is_long():
    """A few hundred lines at most: past that a module holds more than one job."""
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert not long, long
