"""The commands on hostile checkpoint files. Pickles planted where a checkpoint (format 2) should
be, as the header, as the manifest, as a signed object array, are never unpickled by schema.load
or by sample, info or eval; and sample, info and a resumed train each refuse a damaged, lying
or wrong file with exit 1 and one stderr line. Format 1 files with planted pickles are
tests/test_store_no_pickle.py's."""
import copy
import os
import pickle
from pathlib import Path

import numpy as np

from .hostile_support import (FUZZED, assert_one_line_failure, charrnn, edit, flips, huge_cases, invoke,
                              refused, resign, seta, setm, split, write)
from .hostile_support import lab  # noqa: F401  (a fixture)

# --------------------------------------------------------------------------- no pickle, ever

class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def planted_pickles(lab):
    """Pickles where a checkpoint should be, written before pickle is fenced off."""
    header, payload = split(lab.ckpts["lstm"])
    blob = pickle.dumps(Evil())
    files = {}
    with open(lab.path("npy"), "wb") as f:
        np.save(f, np.array([Evil(), None], dtype=object), allow_pickle=True)
        files["np.save object array"] = Path(f.name)
    files["raw pickle"] = write(lab.path("raw"), blob)
    files["pickle as the header"] = write(lab.path("m"), resign(None, payload, raw=blob))
    obj = copy.deepcopy(header)
    obj["__metadata__"]["manifest"] = blob.decode("latin-1")  # pickle where the manifest's JSON should be
    files["pickle as the manifest"] = write(lab.path("j"), resign(obj, payload))
    obj = copy.deepcopy(header)  # a signed object array over pickle bytes, appended as an array
    end = len(payload)
    obj["param/~pickle"] = {"dtype": "O", "shape": [1], "data_offsets": [end, end + len(blob)]}
    files["signed object array"] = write(lab.path("o"), resign(obj, payload + blob))
    obj["param/~pickle"].update(dtype="U8", shape=[len(blob)])  # the same bytes as a plain uint8 array
    files["pickle bytes as uint8 array"] = write(lab.path("u"), resign(obj, payload + blob))
    return files


def test_planted_pickles_in_format_2_files_are_never_unpickled_by_any_command(lab, request, monkeypatch):
    files = planted_pickles(lab)
    request.getfixturevalue("pickle_forbidden")
    monkeypatch.chdir(lab.root)
    for name, path in files.items():
        assert refused(path), name
        for args in (["sample", "--checkpoint", path, "--length", 5], ["info", path],
                     ["eval", lab.root / "corpus.txt", "--checkpoint", path]):
            r = invoke(*args, work=lab.root)
            assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (name, args, r.output, r.exception)
            assert r.stderr.count("\n") == 1 and r.stderr.startswith("charrnn: error: "), r.stderr
    assert not (lab.root / "PWNED").exists()
    FUZZED["planted pickles"] += len(files)


# --------------------------------------------------------------------------- the CLI on hostile files

def test_cli_refuses_hostile_checkpoints_with_one_line(lab):
    data = lab.ckpts["lstm"]
    files = {
        "truncated": write(lab.path("cli"), data[: len(data) // 2]),
        "bit flip": write(lab.path("cli"), next(flips(data, [len(data) * 4 + 3]))[1]),
        "zero bytes": write(lab.path("cli"), b""),
        "a trillion layers": edit(lab, "rnn", None, setm("model.layers", 10**12)),
        "surrogate vocabulary": edit(lab, "gru", None, lambda m: m["vocab"]["tokens"].__setitem__(1, "\udfff")),
        "hidden as a float": edit(lab, "gru", None, setm("model.hidden", 16.0)),
        "lying shape": write(lab.path("cli"), huge_cases(lab)["shape 2**31 x 2**31"]),
    }
    with open(lab.path("cli-npy"), "wb") as f:
        np.save(f, np.array([Evil()], dtype=object), allow_pickle=True)
        files["np.save pickle"] = Path(f.name)
    for name, path in files.items():
        r = charrnn("sample", "--checkpoint", path, "--length", 20, work=lab.root)
        assert_one_line_failure(r, contains=str(path))
    # fields only `info` and a resumed run read
    for name, meta_fn, command in [
        ("metrics a list", setm("metrics", [1]), "info"),
        ("epoch a string", setm("epoch", "x"), "info"),
        ("corpus a string", setm("corpus", "x"), "info"),
        ("rng garbage", setm("rng", "x"), "train"),
        ("schedule unknown", setm("train.lr_schedule", "zigzag"), "train"),
    ]:
        path = edit(lab, "rnn", None, meta_fn)
        args = (["info", path] if command == "info" else
                ["train", "corpus.txt", "--resume", path, "--steps", 5, "--name", "cli-resume", "--force", "--quiet"])
        assert_one_line_failure(charrnn(*args, work=lab.root), contains="not a valid charrnn model")
    opt = edit(lab, "lstm", seta("opt/v.out.c", lambda a: a.astype(np.uint8)))
    assert_one_line_failure(charrnn("train", "corpus.txt", "--resume", opt, "--steps", 5, "--name", "cli-r2",
                                    "--force", "--quiet", work=lab.root), contains="optimizer state")
    assert not (lab.root / "PWNED").exists()
