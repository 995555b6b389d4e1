"""TF-IDF features: word 1-2-grams and character 3-5-grams, the classic strong baseline for judging
text. Saved as JSON (vocabulary, settings) + safetensors (idf weights), never as a pickle, so that a
loaded encoder gives bit-identical features.

    >>> enc = TfidfEncoder(max_features=50).fit(["a cat sat", "a dog ran"])
    >>> enc.transform(["a cat ran"]).shape[0]
    1
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file
from sklearn.feature_extraction.text import TfidfVectorizer

from referee.errors import UserError

FORMAT = "referee-tfidf/1"


def _vectorizers(max_features: int, min_df: int) -> dict[str, TfidfVectorizer]:
    # sublinear_tf: a word said 10 times is not 10 times the evidence; char_wb n-grams catch
    # spelling, markdown and scripts that word tokens miss (useful for multilingual text).
    common = dict(sublinear_tf=True, min_df=min_df, max_features=max_features, dtype=np.float32)
    return {
        "word": TfidfVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", **common),
        "char": TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common),
    }


class TfidfEncoder:
    """texts -> sparse (n, n_word + n_char) float32 matrix, each half L2-normalised."""

    name = "tfidf"

    def __init__(self, max_features: int = 20000, min_df: int = 2):
        self.max_features = max_features
        self.min_df = min_df

    def fit(self, texts: list[str]) -> TfidfEncoder:
        if not texts:
            raise UserError("tfidf: no texts to fit the vocabulary on")
        # min_df=2 would leave an empty vocabulary on a handful of texts; fall back to 1 there.
        min_df = self.min_df if len(texts) >= 10 * self.min_df else 1
        self.vectorizers_ = _vectorizers(self.max_features, min_df)
        for vec in self.vectorizers_.values():
            vec.fit(texts)
        return self

    @property
    def dim(self) -> int:
        return sum(len(v.vocabulary_) for v in self.vectorizers_.values())

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        blocks = [vec.transform(texts) for vec in self.vectorizers_.values()]
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "max_features": self.max_features, "min_df": self.min_df, "vocabulary": {}}
        idf = {}
        for kind, vec in self.vectorizers_.items():
            # JSON keys must be str: the vocabulary maps n-gram -> column, columns as plain ints.
            meta["vocabulary"][kind] = {term: int(i) for term, i in vec.vocabulary_.items()}
            idf[kind] = np.ascontiguousarray(vec.idf_, dtype=np.float64)
        (folder / "tfidf.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        save_file(idf, str(folder / "tfidf_idf.safetensors"))

    @classmethod
    def load(cls, folder: str | Path) -> TfidfEncoder:
        folder = Path(folder)
        for name in ("tfidf.json", "tfidf_idf.safetensors"):
            if not (folder / name).is_file():
                raise UserError(f"{folder}: missing {name}; this judge folder is incomplete")
        meta = json.loads((folder / "tfidf.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise UserError(f"{folder / 'tfidf.json'}: format {meta.get('format')!r}, expected {FORMAT!r}")
        idf = load_file(str(folder / "tfidf_idf.safetensors"))
        enc = cls(max_features=meta["max_features"], min_df=meta["min_df"])
        enc.vectorizers_ = _vectorizers(enc.max_features, 1)
        for kind, vec in enc.vectorizers_.items():
            vec.set_params(vocabulary=meta["vocabulary"][kind])
            vec._validate_vocabulary()  # sklearn's own check that turns `vocabulary` into vocabulary_
            vec.idf_ = idf[kind]
        return enc
