"""The `charrnn` command: train, sample, eval, info here; inspect, diagnose, score, classify and plot in
their own modules, loaded on first use (LAZY_COMMANDS).

A thin shell: parse options, load things, call the core, print. stdout carries data only
(samples, scores, JSON); everything for the eyes goes to stderr. Errors the user can fix
are one line on stderr: exit 2 for usage errors, 1 for run-time ones, never a traceback.
"""
import json
import math
import os
import sys

import click
import numpy as np

from charrnn import __version__
from charrnn import blas
from charrnn.store import schema
from charrnn.store import rundir
from charrnn.cli import train_setup as setup
from charrnn.cli.common import Finite, InputFile, checkpoint_dir_option, input_name, read_inputs, run_training, warn_unknown
from charrnn.training.config import default_threads
from charrnn.core import cells, optim
from charrnn.core.model import num_params
from charrnn.errors import CharrnnError

# commands that live in their own modules, imported only when used: name -> "module:attribute"
LAZY_COMMANDS = {
    "classify": "charrnn.cli.classify:classify",
    "inspect": "charrnn.cli.inspect:inspect",
    "diagnose": "charrnn.cli.diagnose:diagnose",
    "plot": "charrnn.cli.plot:plot",
    "score": "charrnn.cli.score:score",
}


class CharrnnGroup(click.Group):
    """Every expected failure becomes one line on stderr and an exit code, never a traceback.

    Commands in LAZY_COMMANDS are imported on first use, so `charrnn sample` does not pay
    for the modules of `charrnn classify`."""

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS:
            import importlib
            module, attr = LAZY_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # here, before click's main turns it into exit 1
            _quiet_broken_pipe()

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        try:
            super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.UsageError as e:
            if isinstance(e, click.exceptions.NoArgsIsHelpError):  # `charrnn` (or a group) alone: its help
                click.echo(e.format_message(), err=True)
                sys.exit(2)
            _fail(e.format_message(), 2)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except CharrnnError as e:
            _fail(str(e), e.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", 130, prefix="charrnn: ")
        except BrokenPipeError:
            _quiet_broken_pipe()
        except OSError as e:
            _fail(str(e), 1)
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_broken_pipe()
        sys.exit(0)


def _fail(msg, code, prefix="charrnn: error: "):
    click.echo(prefix + " ".join(str(msg).split()), err=True)
    sys.exit(code)


@click.group(cls=CharrnnGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="charrnn", message="%(prog)s %(version)s")
def cli():
    """Train recurrent language models (LSTM, GRU, vanilla RNN) on your own text and sample
    from them; look inside them, score lines, classify texts. Pure numpy; runs on any CPU.

    \b
      charrnn train corpus.txt          # learn; checkpoints under checkpoints/corpus/
      charrnn sample --temp 0.8         # stream text from the latest run
      cat *.txt | charrnn train - --name mine
    """


# --------------------------------------------------------------------------- train

@cli.command()
@click.argument("corpus", nargs=-1, type=click.Path(allow_dash=True, dir_okay=True))
@click.option("--level", type=click.Choice(["char", "word"]), default="char", show_default=True,
              help="Tokens are Unicode characters, or words, punctuation and whitespace runs.")
@click.option("--max-vocab", type=click.IntRange(min=1), default=None,
              help="Word level: keep the N most frequent tokens; the rest become an unknown token.")
@click.option("--cell", type=click.Choice(cells.KINDS), default="lstm", show_default=True,
              help="LSTM, GRU, or vanilla RNN.")
@click.option("--activation", type=click.Choice(cells.ACTIVATIONS), default="tanh", show_default=True,
              help="Nonlinearity of --cell rnn.")
@click.option("--layers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Stacked recurrent layers.")
@click.option("--hidden", type=click.IntRange(min=1), default=256, show_default=True,
              help="Hidden units per layer.")
@click.option("--embed", type=click.IntRange(min=0), default=None,
              help="Embedding width; 0 = one-hot input. [default: 0 at char level, 128 at word level]")
@click.option("--dropout", type=Finite(0, 1, max_open=True), default=0.1, show_default=True,
              help="Inverted dropout on every layer's output during training.")
@click.option("--forget-bias", type=Finite(-10, 10), default=0.0, show_default=True,
              help="LSTM: the forget gate's initial bias. 1 helps very long memory; 0 learns text faster.")
@click.option("--bidirectional", is_flag=True, hidden=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=100, show_default=True,
              help="Window of truncated backpropagation through time.")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Number of contiguous streams trained in parallel.")
@click.option("--optimizer", type=click.Choice(optim.OPTIMIZERS), default="adam", show_default=True,
              help="SGD with momentum 0.9, Adam, RMSprop (alpha 0.95) or Adagrad.")
@click.option("--lr", type=Finite(min=0, min_open=True), default=None,
              help="Peak learning rate. [default: 8e-3 at char level, 2e-3 at word level]")
@click.option("--lr-schedule", type=click.Choice(optim.SCHEDULES), default="cosine", show_default=True,
              help="cosine decays to 0 over the run; step halves it at 25, 50 and 75 %.")
@click.option("--warmup", type=click.IntRange(min=0), default=100, show_default=True,
              help="Steps of linear learning-rate warm-up.")
@click.option("--clip", type=Finite(min=0), default=5.0, show_default=True,
              help="Clip the global gradient norm to this; 0 = off.")
@click.option("--clip-value", type=Finite(min=0), default=0.0,
              help="Also clip each gradient element to [-F, F], as char-rnn does; 0 = off.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Total steps of the run (also when resuming).")
@click.option("--epochs", type=Finite(min=0, min_open=True), default=None,
              help="Stop after this many passes over the training text.")
@click.option("--minutes", type=Finite(min=0, min_open=True), default=None,
              help="Stop after this long; with none of --steps/--epochs/--minutes: 10 minutes.")
@click.option("--val-frac", type=Finite(0, 1, max_open=True), default=0.05, show_default=True,
              help="The last fraction of the text, held out for validation.")
@click.option("--eval-every", type=click.IntRange(min=1), default=200, show_default=True,
              help="Validate and checkpoint every N steps.")
@checkpoint_dir_option
@click.option("--name", default=None, help="Run name [default: the corpus file's stem].")
@click.option("--resume", default=None, is_flag=False, flag_value="", metavar="[PATH]",
              help="Continue a run: from PATH, or from this run's latest checkpoint.")
@click.option("--force", is_flag=True, help="Start over a run that exists, or resume on another corpus.")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with invalid UTF-8.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the initialisation and the dropout masks: same seed, same model.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Workers splitting the batch (processes on Linux where they pay) [default: one per core, at most 4].")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Append one JSON object per step (and per evaluation) to FILE.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.pass_context
def train(ctx, corpus, **o):
    """Learn a language model from CORPUS files (- for stdin; none: the default corpus)."""
    from charrnn.ui import progress
    from charrnn.training.lm import LanguageModelTask
    from charrnn.training.loop import Loop, Stop

    if o["bidirectional"]:
        raise click.UsageError("a bidirectional language model would see the future it must predict; "
                               "bidirectional layers are for `charrnn classify`", ctx)
    if not corpus and o["resume"]:
        setup.refuse_corpus_as_checkpoint(o["resume"])  # `train --resume notes.txt`, before any default corpus
    paths = list(corpus) or [setup.default_corpus(o["quiet"])]
    sources = read_inputs(paths, spool_in_cache=True)  # a missing or unreadable corpus is the first thing to report
    run = rundir.RunDir(os.path.join(o["checkpoint_dir"], setup.checked_run_name(o["name"], paths)))
    given = {k for k in o if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    resume = setup.load_resume(o, run) if o["resume"] is not None else None
    tcfg = setup.train_config(o, resume, given)
    if resume is not None and tcfg.steps is not None and resume.step >= tcfg.steps:
        click.echo(f"nothing to train: {run.path} is at step {resume.step:,}, and --steps {tcfg.steps:,} is the "
                   f"run's total; give a larger --steps to go on", err=True)
        return
    if resume is not None and "threads" in given and tcfg.threads != resume.train.threads:
        click.echo(f"warning: --threads {tcfg.threads} differs from the run's {resume.train.threads}: training goes "
                   f"on, but no longer bit for bit as the run would have without the interruption", err=True)
    corpus_obj = setup.read_corpus(sources, tcfg, o["quiet"], resume)  # streams the files, removes a stdin spool
    if resume is not None:
        if resume.corpus.get("sha256") != corpus_obj.sha256 and not o["force"]:
            raise CharrnnError("this corpus differs from the one the checkpoint was trained on "
                               "(another sha256); add --force to resume on it anyway")
        mcfg = setup.check_model_unchanged(resume.cfg, o, given)
    else:
        mcfg = setup.model_config(o, len(corpus_obj.vocab), tcfg.level)
    reporter = progress.make_reporter(o["quiet"])
    stop = Stop()
    with run.lock():
        if resume is None and run.resume_path() and not o["force"]:
            raise CharrnnError(f"{run.path} already holds a run; use --resume to continue it, --force to start "
                               f"it over, or --name to start another")
        run.clean_stale_temps()
        if resume is None and o["force"]:
            run.start_over()

        def make(log):
            if resume is not None:
                reporter.message(f"resuming {run.path} at step {resume.step}")
            task = LanguageModelTask(corpus_obj, mcfg, tcfg, resume, blas.product_limit())
            return Loop(task, tcfg, run, reporter, log, stop)

        run_training(make, reporter, o["log_path"], stop)


# --------------------------------------------------------------------------- sample

@cli.command()
@click.option("--checkpoint", "ckpt", default=None, metavar="PATH",
              help="A checkpoint file or a run directory (its best) [default: the latest run].")
@checkpoint_dir_option
@click.option("--temp", "--temperature", "temp", type=Finite(min=0, min_open=True), default=1.0,
              show_default=True, help="Below 1 is more conservative, above 1 more surprising.")
@click.option("--top-k", type=click.IntRange(min=0), default=0,
              help="Draw only from the K most likely tokens; 0 = all.")
@click.option("--top-p", type=Finite(0, 1, min_open=True), default=1.0,
              help="Draw only from the smallest set of tokens with probability P.")
@click.option("--argmax", is_flag=True, help="Always take the most likely token.")
@click.option("--prime", default=None, help="Text fed to the model first (and echoed).")
@click.option("--prime-file", type=InputFile(), default=None, help="Read the prime from FILE (- = stdin).")
@click.option("--length", type=click.IntRange(min=0), default=500, show_default=True,
              help="Tokens generated after the prime; 0 = until --stop or the pipe closes.")
@click.option("--num-samples", type=click.IntRange(min=1), default=1, show_default=True,
              help="Samples to draw, one after another, each starting from the prime.")
@click.option("--stop", "stop_text", default=None, help="End a sample after this text appears.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Same seed, same bytes [default: random].")
@click.option("--beam", type=click.IntRange(min=1), default=None,
              help="Beam search with N beams for the most likely continuation (alone: no --temp, --top-k, "
                   "--top-p, --argmax, --seed, --stop or --num-samples).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="BLAS threads sharing each step's products [default: 2 when a core is idle, else 1].")
def sample(ckpt, checkpoint_dir, temp, top_k, top_p, argmax, prime, prime_file, length, num_samples, stop_text,
           seed, beam, threads):
    """Stream text from a trained model to stdout."""
    from charrnn.core.sampling import NonFiniteOutput

    try:
        # a non-finite output is reported below, not warned about
        with np.errstate(all="ignore"), blas.threads(threads or _sampling_threads()) as applied:
            if threads and threads > 1 and not applied:
                click.echo("charrnn: warning: --threads has no effect here (numpy's BLAS is not an OpenBLAS "
                           "whose thread count can be set)", err=True)
            _sample(ckpt, checkpoint_dir, temp, top_k, top_p, argmax, prime, prime_file, length, num_samples,
                    stop_text, seed, beam)
    except NonFiniteOutput as e:
        raise CharrnnError(f"cannot sample: {e}") from None


def _sampling_threads():
    """2 when the load average leaves a core idle, else 1. OpenBLAS's threads wait for each
    other at every product, so with the other core busy (a training run beside it) two threads
    made a batch-1 step 12 to 23 times slower, where on an idle machine they make it 1.4x faster."""
    cores = default_threads(2)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 1
    return 2 if cores >= 2 and load <= cores - 1.5 else 1


def _sample(ckpt, checkpoint_dir, temp, top_k, top_p, argmax, prime, prime_file, length, num_samples, stop_text,
            seed, beam):
    from charrnn.core import model
    from charrnn.core.sampling import Sampler, beam_search, context

    if prime is not None and prime_file is not None:
        raise click.UsageError("give --prime or --prime-file, not both")
    if beam and length == 0:
        raise click.UsageError("--beam needs a --length above 0")
    if beam:  # beam search is deterministic and keeps its beams to the end: these would do nothing
        ignored = [name for name, on in [("--temp", temp != 1.0), ("--top-k", top_k), ("--top-p", top_p < 1.0),
                                         ("--argmax", argmax), ("--seed", seed is not None),
                                         ("--stop", stop_text), ("--num-samples", num_samples > 1)] if on]
        if ignored:
            raise click.UsageError(f"--beam cannot be combined with {', '.join(ignored)}: beam search takes "
                                   f"the single most likely continuation of --length tokens")
    b = schema.load(schema.resolve(ckpt, checkpoint_dir))  # after the usage errors, which need no model
    if prime_file is not None:
        from charrnn.text.vocab import decode_bytes
        prime = decode_bytes(prime_file.read(), name=input_name(prime_file), errors_option=False)
    prime_ids = _encode_prime(b.vocab, prime or "")
    out = sys.stdout.buffer
    rng = np.random.default_rng(seed)
    start = context(b.vocab.tokens, prime_ids, rng)
    for n in range(num_samples):
        text_so_far = b.vocab.decode(prime_ids)
        if n:
            out.write(b"\n")
        out.write(text_so_far.encode("utf-8"))
        out.flush()
        if beam:
            toks, _ = beam_search(b.params, b.cfg, start, length, beam, blas.product_limit())
            piece = b.vocab.decode(toks)
            out.write(piece.encode("utf-8"))
            text_so_far += piece
        else:
            s = Sampler(model.Stepper(b.params, b.cfg), rng, temp, top_k, top_p, argmax)
            for tok in start:
                s.feed(tok)
            i = 0
            tail = ""
            while length == 0 or i < length:
                piece = b.vocab.decode_one(s.draw())
                out.write(piece.encode("utf-8"))
                out.flush()
                i += 1
                if stop_text:
                    tail = (tail + piece)[-(len(stop_text) + len(piece)):]
                    if stop_text in tail:
                        break
            text_so_far += tail
        if n < num_samples - 1 and not text_so_far.endswith("\n"):
            out.write(b"\n")
    if out.isatty():
        out.write(b"\n")
    out.flush()


def _encode_prime(vocab, text):
    if not text:
        return []
    ids, unknown = vocab.encode_known(text)
    warn_unknown(vocab, ids, unknown, "the prime", text)
    return [int(i) for i in ids]


# --------------------------------------------------------------------------- eval

@cli.command("eval")
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=True))
@click.option("--checkpoint", "ckpt", default=None, metavar="PATH",
              help="A checkpoint file or a run directory (its best) [default: the latest run].")
@checkpoint_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with invalid UTF-8.")
def evaluate(file, ckpt, checkpoint_dir, as_json, errors):
    """Score a text: loss in nats per token, bits per character, perplexity."""
    from charrnn.analysis import likelihood
    from charrnn.text.vocab import decode_bytes

    b = schema.load(schema.resolve(ckpt, checkpoint_dir))
    name = input_name(file)
    with read_inputs([file]) as sources:  # scoring reads the whole text
        text = decode_bytes(sources.read(), errors, name=name)
    ids, unknown = b.vocab.encode_known(text)
    warn_unknown(b.vocab, ids, unknown, name, text)
    if len(ids) < 2:
        raise CharrnnError(f"{name}: too short to score (needs at least 2 tokens the model knows)")
    nll, n = likelihood.stream_nll(b.params, b.cfg, np.asarray(ids), batch=16, seq_len=100,
                                workers=default_threads(16), limit=blas.product_limit())
    chars = sum(len(b.vocab.tokens[i]) for i in ids[1:]) if b.vocab.level == "word" else n
    r = {**likelihood.summary(nll, n, chars), "skipped": sum(unknown.values())}  # skipped: not in the vocabulary
    if as_json:
        click.echo(json.dumps(r))
    else:
        click.echo(f"loss {r['loss']:.4f} nats/token\nbits_per_char {r['bits_per_char']:.4f}\n"
                   f"perplexity {r['perplexity']:.3f}\ntokens {r['tokens']}\nskipped {r['skipped']}")


# --------------------------------------------------------------------------- info

@cli.command()
@click.argument("path", required=False)
@checkpoint_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(path, checkpoint_dir, as_json):
    """Describe a checkpoint: model, training recipe, step, validation loss, vocabulary.

    PATH is a checkpoint file or a run directory [default: the latest run]."""
    resolved = schema.resolve(path, checkpoint_dir, kind=None)
    b = schema.load(resolved, kind=None)
    metrics = b.metrics
    d = {"path": resolved, "model": b.cfg.to_json(), "train": b.train.to_json() if b.train else None,
         "params": num_params(b.params), "step": b.step, "epoch": b.epoch,
         "val_loss": metrics.get("val_loss"), "best_val_loss": metrics.get("best_val_loss"),
         "vocab_size": len(b.vocab), "level": b.vocab.level, "corpus_sha256": b.corpus.get("sha256"),
         "charrnn": b.version, "kind": b.kind}
    if b.cfg.labels:
        d.update(labels=b.labels, val_acc=metrics.get("val_acc"),
                 classify=None if b.classify is None else b.classify.to_json())
    if as_json:
        click.echo(json.dumps(d))
        return
    m, t = b.cfg, b.train
    inp = "one-hot input" if m.embed == 0 else f"embed {m.embed}"
    act = f" ({m.activation})" if m.cell == "rnn" else ""
    lines = [f"checkpoint   {resolved}",
             f"model        {m.cell}{act} {m.layers}x{m.hidden}, {inp}, dropout {m.dropout}"
             + (f", forget bias {m.forget_bias:g}" if m.cell == "lstm" else "")
             + (", bidirectional" if m.bidirectional else ""),
             f"parameters   {d['params']:,}",
             f"vocabulary   {len(b.vocab)} {b.vocab.level} tokens",
             f"step         {b.step}" + (f" (epoch {d['epoch']:.2f})" if d["epoch"] is not None else ""),
             f"val loss     {_fmt(d['val_loss'])} (best {_fmt(d['best_val_loss'])}) nats/token"]
    if m.labels:
        lines[-1] = f"val loss     {_fmt(d['val_loss'])} nats, accuracy {_fmt(d['val_acc'])}"
        lines.append(f"labels       {m.labels}: {', '.join(d['labels'])}")
    if t:
        lines.append(f"training     {t.optimizer} lr {t.lr:g} {t.lr_schedule}, batch {t.batch} x seq-len "
                     f"{t.seq_len}, clip {t.clip:g}, seed {t.seed}")
    click.echo("\n".join(lines))


def _fmt(x):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


# --------------------------------------------------------------------------- entry point

def main(argv=None):
    cli.main(args=argv, prog_name="charrnn")


def _quiet_broken_pipe():
    """The reader went away (`| head`): stop quietly, as a generator in a pipeline should. Both
    streams go to /dev/null, so flushing the broken one at exit raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        os.dup2(devnull, stream.fileno())
    sys.exit(0)
