"""A trained sequence classifier: the label of each text (`charrnn classify predict`)."""
from collections.abc import Iterable

import numpy as np

from charrnn.api.trained import Model, need_text
from charrnn.config.recipe import ClassifyConfig
from charrnn.errors import CharrnnWarning


class Classifier(Model):
    """A trained sequence classifier (what ``charrnn.load`` gives for one)."""

    kind = "classifier"

    @property
    def labels(self):
        """The label names, in the order of the model's outputs."""
        return list(self._ck.labels)

    def _more_info(self):
        ck = self._ck
        return {"labels": list(ck.labels), "val_acc": ck.metrics.get("val_acc"),
                "classify": None if ck.classify is None else ck.classify.to_json()}

    def classify(self, texts: Iterable[str], probabilities: bool = False) -> list[str] | list[dict[str, float]]:
        """The label of each text, or with ``probabilities`` a dict label -> p for each. Symbols
        the model never saw are skipped (one warning for all the texts)."""
        import warnings
        from charrnn.text.labeled import encode
        from charrnn.training.classify import predict
        if isinstance(texts, str):
            texts = [texts]  # one text, not its characters
        ck = self._ck
        max_len = ck.classify.max_len if ck.classify is not None else ClassifyConfig.max_len
        seqs, skipped = [], 0
        for t in texts:
            ids, unknown = encode(ck.vocab, need_text(t, "each text"), max_len)
            skipped += bool(unknown)
            seqs.append(ids)
        if skipped:
            warnings.warn(f"in {skipped} line(s), symbols the model never saw were skipped", CharrnnWarning,
                          stacklevel=2)
        p = predict(ck.params, ck.cfg, seqs) if seqs else np.zeros((0, len(self.labels)))
        if probabilities:
            return [dict(zip(self.labels, row.tolist())) for row in p]
        return [self.labels[k] for k in p.argmax(axis=1)]
