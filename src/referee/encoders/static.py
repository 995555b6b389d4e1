"""A static-embedding encoder distilled from a sentence-transformers model with model2vec.

model2vec's `distill` runs the teacher once over every token of its vocabulary (no data needed), reduces
the token vectors with PCA and weights them (SIF); a text's embedding is then the mean of its tokens'
vectors. It reads every token of a text (no 256-token cut) at hundreds of times the teacher's speed,
and loses some quality: `bench/speed.py` measures how much.

Install model2vec and skeletoken WITHOUT model2vec's `distill` extra: that extra pins transformers < 5.4,
which pip would satisfy by downgrading ours (model2vec 0.10 distils fine with transformers 5).

The student lives in `cache_dir("static", <teacher key>)` as model2vec writes it (safetensors + JSON);
`referee-static.json` is written last, so a folder without it is an unfinished distillation.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from referee.errors import require_extra
from referee.paths import cache_dir

FORMAT = "referee-static/1"
PCA_DIMS = 256  # model2vec's default: the student's embedding size


def _import_model2vec():
    # `referee[static]` installs model2vec without its `distill` extra (see above).
    require_extra("static", "model2vec", "skeletoken")
    import model2vec
    from model2vec.distill import distill
    return model2vec, distill


def key(teacher_key: str) -> str:
    model2vec, _ = _import_model2vec()
    return f"{teacher_key}|model2vec-{model2vec.__version__}-pca{PCA_DIMS}"


def distilled(teacher: str, teacher_key: str, progress: bool = True) -> Path:
    """The folder of the student distilled from `teacher` (a sentence-transformers folder); distilled on
    the first call for this teacher, read from the cache after."""
    student_key = key(teacher_key)
    folder = cache_dir("static", hashlib.sha256(student_key.encode()).hexdigest()[:24])
    if (folder / "referee-static.json").is_file():
        return folder
    _, distill = _import_model2vec()
    if progress:
        print(f"distilling a static encoder from {teacher} with model2vec, once, into {folder}")
    work = Path(tempfile.mkdtemp(dir=folder, prefix=".tmp-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            distill(model_name=teacher, pca_dims=PCA_DIMS, device="cpu").save_pretrained(str(work))
        for path in work.iterdir():
            os.replace(path, folder / path.name)
        (folder / "referee-static.json").write_text(json.dumps({"format": FORMAT, "key": student_key}), encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


class StaticModel:
    """texts -> (n, dim) float32: the mean of the student's token vectors over every token."""

    max_tokens = None  # no cut

    def __init__(self, folder: Path):
        from model2vec import StaticModel as Model2Vec
        self.model = Model2Vec.from_pretrained(str(folder))
        self.dim = int(self.model.dim)
        self.tokenizer = None

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(list(texts), max_length=None, use_multiprocessing=False).astype(np.float32)
