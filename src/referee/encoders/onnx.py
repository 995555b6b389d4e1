"""ONNX Runtime encoders: a sentence-transformers model exported once to ONNX (fp32) and quantised to
int8, then run by ONNX Runtime.

The whole sentence-transformers pipeline (transformer, pooling, normalisation) is exported as one graph
by torch's own exporter, so no pooling is written again here; int8 is onnxruntime's dynamic
quantisation with per-channel weight scales (per-tensor scales lose too much: mean cosine to fp32
0.94 against 0.994 on Arena texts). sentence-transformers' own `backend="onnx"` needs `optimum-onnx`,
which pins transformers < 4.58, so it cannot be installed beside referee's transformers 5.

The export lives in `cache_dir("onnx", <model key>)`: `model.onnx`, `model-int8.onnx`, the tokenizer
files and `referee-onnx.json` (written last: a folder without it is an unfinished export).
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

from referee.paths import cache_dir

FORMAT = "referee-onnx/2"  # 2: eager attention (below); a /1 export is not reused
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export(load_model, key: str, progress: bool = True) -> Path:
    """The folder holding the model identified by `key` as ONNX fp32 and int8; exported on the first call
    for this key (`load_model()` gives the SentenceTransformer), read from the cache after."""
    folder = cache_dir("onnx", hashlib.sha256(f"{FORMAT}\n{key}".encode()).hexdigest()[:24])
    if (folder / "referee-onnx.json").is_file():
        return folder
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import PreTrainedModel

    class Pipeline(torch.nn.Module):
        """token tensors -> (batch, dim) sentence embeddings, through every sentence-transformers module."""

        def __init__(self, st):
            super().__init__()
            self.st = st

        def forward(self, input_ids, attention_mask, token_type_ids):
            features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.st(features)["sentence_embedding"]

    model = load_model()
    # torch's scaled_dot_product_attention exports with an IsNaN / Where guard over every attention
    # score: 40% of int8 MiniLM's time in onnxruntime's profile. Eager attention exports as a plain
    # masked softmax, the same numbers: int8 went from 22.6 to 34.1 texts/s on 192 Arena texts.
    transformers = [m for m in model.modules() if isinstance(m, PreTrainedModel)]
    before = [m.config._attn_implementation for m in transformers]
    for m in transformers:
        m.set_attn_implementation("eager")
    if progress:
        print(f"exporting the encoder to ONNX and quantising it to int8, once, into {folder}")
    sample = model.tokenizer(["an example", "a second, longer example"], padding=True, return_tensors="pt")
    args = tuple(sample.get(name, torch.zeros_like(sample["input_ids"])) for name in INPUTS)
    work = Path(tempfile.mkdtemp(dir=folder, prefix=".tmp-"))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # The TorchScript exporter: the dynamo one needs onnxscript rewrites that fail on some BERTs.
            torch.onnx.export(Pipeline(model).eval(), args, str(work / "model.onnx"), input_names=list(INPUTS),
                              output_names=["sentence_embedding"], opset_version=17, dynamo=False,
                              dynamic_axes={name: {0: "batch", 1: "tokens"} for name in INPUTS})
            quantize_dynamic(str(work / "model.onnx"), str(work / "model-int8.onnx"), per_channel=True,
                             weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": 1})
        model.tokenizer.save_pretrained(str(work))
        for path in work.iterdir():
            os.replace(path, folder / path.name)
        meta = {"format": FORMAT, "key": key, "max_tokens": int(model.max_seq_length),
                "dim": int(model.get_embedding_dimension())}
        (folder / "referee-onnx.json").write_text(json.dumps(meta), encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for m, implementation in zip(transformers, before):
            if implementation:
                m.set_attn_implementation(implementation)
    return folder


class OnnxModel:
    """texts -> (n, dim) float32 sentence embeddings from an exported folder, fp32 or int8."""

    def __init__(self, folder: Path, int8: bool):
        import onnxruntime as ort
        from transformers import AutoTokenizer

        meta = json.loads((folder / "referee-onnx.json").read_text(encoding="utf-8"))
        self.max_tokens, self.dim = meta["max_tokens"], meta["dim"]
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        options = ort.SessionOptions()
        # Spinning worker threads steal the CPU from everything else on a shared machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Each new (batch, length) shape would add a memory pattern that ONNX Runtime keeps for good, and
        # grow its arena to the largest batch seen: a server's memory crept up for thousands of requests.
        # No patterns, and the arena shrunk back after each run (`encode`).
        options.enable_mem_pattern = False
        self.session = ort.InferenceSession(str(folder / ("model-int8.onnx" if int8 else "model.onnx")),
                                            options, providers=["CPUExecutionProvider"])
        self.shrink = ort.RunOptions()
        self.shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def encode(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="np")
        ids = batch["input_ids"].astype(np.int64)
        feed = {name: batch[name].astype(np.int64) if name in batch else np.zeros_like(ids) for name in INPUTS}
        return self.session.run(None, feed, self.shrink)[0].astype(np.float32, copy=False)
