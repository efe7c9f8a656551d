"""No pickle, ever: pickles planted where a format 1 file should be are refused unread, and no
module of store/ or checkpoint/ can unpickle (their source names no pickle module, no np.load,
no allow_pickle). Format 2 files with planted pickles, through every command, are
tests/test_cli_hostile_commands.py's."""

from __future__ import annotations

import ast
import inspect
import pickle
from pathlib import Path

import numpy as np
import pytest

from .store_support import assemble, craft, expect_error, write_bytes


def plant_pickles(tmp_path: Path) -> tuple[Path, ...]:
    """An np.save object array and raw pickle streams, written before pickle is fenced off."""
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        np.save(f, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    raw = tmp_path / "raw.ckpt"
    raw.write_bytes(pickle.dumps({"W": np.zeros(3)}, protocol=pickle.HIGHEST_PROTOCOL))
    proto0 = tmp_path / "proto0.ckpt"
    proto0.write_bytes(pickle.dumps([1, 2], protocol=0))
    return path, raw, proto0


def test_planted_pickles_in_format_1_files_are_never_unpickled(tmp_path, request):
    paths = plant_pickles(tmp_path)
    request.getfixturevalue("pickle_forbidden")
    for path in paths:
        expect_error(path, f"{path}: not a charrnn checkpoint")

    # Right magic, pickle where the manifest should be.
    evil = write_bytes(tmp_path, assemble(pickle.dumps({"format": 1}), b""), "m.ckpt")
    expect_error(evil, contains="damaged checkpoint manifest")

    # A correctly signed manifest declaring an object array over pickle bytes.
    blob = pickle.dumps([object.__new__(object)])
    body = {
        "format": 1,
        "arrays": {"x": {"dtype": "|O", "shape": [1], "offset": 0, "nbytes": 8}},
        "meta": {},
    }
    evil2 = write_bytes(tmp_path, craft(body, blob), "o.ckpt")
    expect_error(evil2, contains="disallowed dtype '|O'")


@pytest.mark.parametrize("module", ["store.container", "store.legacy", "store.reading", "store.rundir",
                                    "checkpoint.schema", "checkpoint.find"])
def test_module_source_never_touches_pickle(module):
    import importlib
    tree = ast.parse(inspect.getsource(importlib.import_module(f"charrnn.{module}")))
    forbidden_modules = {"pickle", "_pickle", "shelve", "marshal"}
    forbidden_attrs = {"load", "loads", "save", "savez", "savez_compressed", "Unpickler"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & forbidden_modules
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in forbidden_modules
        if isinstance(node, ast.Attribute) and node.attr in forbidden_attrs:
            assert isinstance(node.value, ast.Name) and node.value.id in ("json", "container", "legacy", "schema"), \
                node.attr
        if isinstance(node, ast.keyword):
            assert node.arg != "allow_pickle"
