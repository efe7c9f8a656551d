"""Where a training run lives and what it leaves: RunOptions, shared by `charrnn train`,
`charrnn classify train` and charrnn.train. None of it changes what is learned, so none of it
travels in a checkpoint."""
from dataclasses import dataclass

from charrnn.config.fields import check, option


@dataclass(frozen=True)
class RunOptions:
    checkpoint_dir: str = option("checkpoints", "Where runs live (env CHARRNN_CHECKPOINT_DIR).",
                                 envvar="CHARRNN_CHECKPOINT_DIR")
    name: str | None = option(None, "Run name.", auto="the corpus file's stem")
    resume: str | None = option(None, "Continue a run: from PATH, or (no PATH; in Python \"\") from this run's "
                                      "latest checkpoint.", metavar="[PATH]")
    force: bool = option(False, "Start over a run that exists, or resume on another corpus.")
    log: str | None = option(None, "Append one JSON object per step (and per evaluation) to FILE (see `charrnn "
                                   "plot`).", metavar="FILE")

    def __post_init__(self):
        check(self)
