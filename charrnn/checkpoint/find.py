"""Which checkpoint a command reads: a file, a run directory (its best), or the most recent run
holding a model of the kind the command needs."""
from charrnn.errors import CheckpointError
from charrnn.store import container, rundir


def resolve(path, checkpoint_dir, kind="lm"):
    """The checkpoint a command reads (rundir.resolve_checkpoint), where no path means the most
    recent run holding a model of this kind ("lm", "classifier", None for either): a classifier
    trained last does not hide the language model trained before it."""
    def accept(p):
        try:
            meta = container.read_meta(p)  # the manifest only: the chosen file is loaded in full later
        except CheckpointError:
            return True  # load() then says what is wrong with it
        return (meta.get("kind") == "classifier") == (kind == "classifier")

    if kind is None:
        return rundir.resolve_checkpoint(path, checkpoint_dir)
    if kind == "classifier":
        return rundir.resolve_checkpoint(path, checkpoint_dir, accept, "sequence classifier",
                                         "charrnn classify train DATA.tsv")
    return rundir.resolve_checkpoint(path, checkpoint_dir, accept, "language model")
