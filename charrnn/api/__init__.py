"""charrnn as a library: load a trained model and use it, or train one from a script.

    import charrnn
    model = charrnn.load("checkpoints/notes")     # a run directory (its best) or a .ckpt file
    model.generate("The ", length=200, temperature=0.8, seed=1)
    for piece in model.stream(length=0, stop="\\n\\n"): ...   # tokens as they come
    model.score("a line of text")                 # Score(logprob, surprisal, tokens)
    model.evaluate(text)                          # the figures of `charrnn eval --json`
    model.info                                    # what `charrnn info --json` shows
    charrnn.load("checkpoints/labels").classify(["a text", ...])   # a classifier's labels
    charrnn.train("notes.txt", minutes=1, callback=print)         # -> the trained LanguageModel

The command line is built on these. Options are the config dataclasses' fields, by their
Python names (charrnn.ModelConfig, TrainConfig, SamplingOptions, RunOptions); a value one
cannot take is a charrnn.UsageError naming the parameter. Problems raise charrnn.CharrnnError
or a subclass (UsageError, CheckpointError, CorpusError); symbols a model never saw are
charrnn.CharrnnWarning warnings. Nothing prints unless asked (train's progress=True).
"""
from charrnn.api.classifier import Classifier
from charrnn.api.language_model import LanguageModel, Score
from charrnn.api.load import load
from charrnn.api.train import train
from charrnn.api.trained import Model

__all__ = ["Classifier", "LanguageModel", "Model", "Score", "load", "train"]
