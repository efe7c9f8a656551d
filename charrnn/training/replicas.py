"""How the ranks of an MPI job start one run (training/distributed.py is how they train it).

The ranks first check that they run the same charrnn with the same options; rank 0 then
prepares the run as a single machine would (it alone reads the corpus and the checkpoint to
resume, and takes the run directory) and broadcasts what the others need: the configs, the
corpus's tokens and vocabulary, and the starting state of the task it built, so that every
replica starts from the same bytes.
"""
import dataclasses
import json
import os

import numpy as np

from charrnn import __version__, blas
from charrnn.core import shards
from charrnn.errors import CharrnnError
from charrnn.checkpoint import schema
from charrnn.store.rundir import RunDir
from charrnn.text.corpus import Corpus
from charrnn.text.vocab import Vocab
from charrnn.config.recipe import TrainConfig
from charrnn.training import prepare as preparing
from charrnn.training.lm import LanguageModelTask


def check_alike(world, req):
    """Refuse, on rank 0 in one line, a rank that runs another charrnn or other options (a
    Request's given options, run options and corpus); the ranks' hosts and pids."""
    asked = {**req.options, **dataclasses.asdict(req.run), "corpus": list(req.paths)}
    mine = {"charrnn": __version__, "host": world.host, "pid": os.getpid(),
            "options": {**json.loads(json.dumps(asked, default=str)),
                        "CHARRNN_MPI_REDUCE": os.environ.get("CHARRNN_MPI_REDUCE", "auto")}}
    everyone = world.allgather_json(mine)
    if not world.primary:
        return everyone
    for r, theirs in enumerate(everyone):
        if theirs["charrnn"] != __version__:
            world.fail(f"rank {r} ({theirs['host']}) runs charrnn {theirs['charrnn']} and rank 0 charrnn "
                       f"{__version__}: every machine needs the same charrnn", 1)
        ours, other = mine["options"], theirs["options"]
        diff = sorted(k for k in set(ours) | set(other) if ours.get(k) != other.get(k))
        if diff:
            k = diff[0]
            what = f"{k}=" if k.isupper() else f"--{k.replace('_', '-')} "  # an environment variable, or an option
            world.fail(f"rank {r} ({theirs['host']}) was started with other options than rank 0: "
                       f"{what}{_given(other, k)} there, {_given(ours, k)} here; "
                       f"give every rank the same command line", 2)
    return everyone


def _given(options, k):
    return options[k] if k in options else "(not given)"


def prepare(world, req, notify):
    """training/prepare.prepare for a rank of an MPI job: a Prepared on every rank, whose task
    (on rank 0 the one it built, elsewhere one built from rank 0's broadcast) starts from the
    same bytes."""
    everyone = check_alike(world, req)
    p = plan = arrays = None
    if world.primary:
        try:
            p = preparing.prepare(req, notify, ranks=world.size, reduction=world.reduction)
            plan = {"run": p.run.path, "done": p.done}
            n = len(shards.bounds(p.tcfg.batch)) if not p.done else 0
            if not p.done and n < world.size:
                raise CharrnnError(f"--batch {p.tcfg.batch} makes {n} shard(s) of {shards.size(p.tcfg.batch)} streams, "
                                   f"fewer than the {world.size} ranks: give every rank a shard "
                                   f"(--batch {shards.MAX_STREAMS * world.size} or more)")
            if not p.done and not req.quiet:  # mpirun's report of a lost process names its pid and host only
                how = {"exact": "gathered and summed in shard order (exact)",
                       "sum": "summed by MPI_Allreduce (to float32 rounding)"}[p.tcfg.reduction]
                notify("MPI ranks: " + ", ".join(f"{r} on {t['host']} (pid {t['pid']})" for r, t in enumerate(everyone))
                       + f"; gradients {how}")
            if not p.done:
                p.task = LanguageModelTask(p.corpus, p.mcfg, p.tcfg, p.resume, blas.product_limit(), p.paths, world,
                                           p.choice, p.probe_seconds)
                arrays, meta = schema.pack(p.task.checkpoint(p.task.start_step, {}, None))
                plan.update(meta=meta, tcfg=p.tcfg.to_json(), sha256=p.corpus.sha256, n_chars=p.corpus.n_chars,
                            paths=p.paths, force=p.force, resuming=p.resume is not None)
        except CharrnnError as e:
            world.fail(str(e), e.exit_code)
    plan = world.bcast_json(plan)
    if plan["done"]:
        return p if world.primary else preparing.Prepared(RunDir(plan["run"]), done=plan["done"])
    tokens = world.bcast_arrays({"tokens": np.asarray(p.corpus.tokens)} if world.primary else None)["tokens"]
    arrays = world.bcast_arrays(arrays)
    if world.primary:
        return p
    start = schema.unpack(arrays, plan["meta"])
    corpus = Corpus(tokens=tokens, vocab=Vocab.from_json(plan["meta"]["vocab"]), sha256=plan["sha256"],
                    n_chars=plan["n_chars"])
    tcfg = TrainConfig.from_json(plan["tcfg"])
    task = LanguageModelTask(corpus, start.cfg, tcfg, start, blas.product_limit(), plan["paths"], world)
    return preparing.Prepared(RunDir(plan["run"]), corpus, start.cfg, tcfg, start if plan["resuming"] else None,
                          plan["force"], paths=plan["paths"], task=task)
