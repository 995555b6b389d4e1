"""SmolLM2's response features at a GPU's token cap, read on a GPU, then used on a CPU.

`features="lm"` reads 512 tokens of each conversation on a CPU and 2,048 on a GPU (`LMStates`). To
measure what the longer read is worth without a GPU at hand, read every response of the leaderboard's
sets once on a GPU machine, bring the cached features back, and fit the judges here:

    # on the GPU machine (no network needed: the SmolLM2 wheel in referee's cache, ../shared/data at REFEREE_DATA)
    python bench/lm_gpu.py read --out DIR            # reads, times (seconds per 1,000 texts), packs the cache into DIR
    # here
    .venv/bin/python bench/lm_gpu.py file DIR        # files the features under this machine's key, checks every text is there
    .venv/bin/python bench/leaderboard.py --lm-tokens 2048 --lm-dtype bfloat16 --lm-cache-only --sets pandalm ...

The cache's key names the model folder by path and file times (`FrozenEncoder`), which differ between
machines that converted the same GGUF file: `file` rewrites that part of the key and nothing else (the
dtype, token cap and prompt prefix stay the GPU's), then reads every packed set's conversations with the
model switched off, so a text the GPU did not read fails instead of being read here.

Measured on one NVIDIA H200 (2026-11-28): docs/signal.md, "SmolLM2 at 2,048 tokens".
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tarfile
import time
from pathlib import Path

import leaderboard
from referee.encoders.lm import CausalLM, _Cache
from referee.paths import cache_dir

SETS = ("arena", "pandalm", "autoj", "hh_rlhf", "xstest")  # xstest_harm reads XSTest's texts too
PIECE = 15 * 2**20  # bytes per packed file: the GPU machine returns files of at most 16 MiB
MANIFEST = "lm-gpu.json"


def model(spec: str, tokens: int, dtype: str, batch_size: int = 8) -> CausalLM:
    return CausalLM(spec, max_tokens=tokens, dtype=dtype, batch_size=batch_size, progress=True)


def read(args) -> None:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    lm = model(args.model, args.tokens, args.dtype, args.batch_size)
    start = time.perf_counter()
    lm._load()
    print(f"{device}: {args.model} loaded in {time.perf_counter() - start:.1f} s ({args.dtype}, {args.tokens} tokens)")
    rows = []
    for name in args.sets.split(","):
        s = leaderboard.SETS[name]
        convs = leaderboard.conversations(s, s.examples())
        done, start = lm.texts_computed, time.perf_counter()
        lm.response_features(convs)
        seconds, texts = time.perf_counter() - start, lm.texts_computed - done
        rows.append((name, len(convs), texts, seconds))
        print(f"| {name} | {len(convs)} | {texts} | {seconds:.1f} | {1000 * seconds / max(texts, 1):.1f} |", flush=True)
    print("\n| set | conversations | distinct texts read | seconds | seconds per 1,000 texts |\n|---|---|---|---|---|")
    for name, n, texts, seconds in rows:
        print(f"| {name} | {n} | {texts} | {seconds:.1f} | {1000 * seconds / max(texts, 1):.1f} |")
    ours = f"lm|response|{lm.key}|{args.dtype}|{args.tokens}|"  # this model's features at this cap, whatever the prefix
    folders = sorted(p for p in cache_dir("embeddings").iterdir() if p.is_dir() and shard_key(p).startswith(ours))
    manifest = {"device": device, "model": args.model, "tokens": args.tokens, "dtype": args.dtype, "model_key": lm.key,
                "torch": torch.__version__, "rows": rows,
                "folders": {p.name: shard_key(p) for p in folders}}
    pack(folders, manifest, Path(args.out))


def shard_key(folder: Path) -> str:
    """The cache key a folder's shards were written under (each new shard names it in its metadata)."""
    from safetensors import safe_open

    for shard in sorted(folder.glob("shard-*.safetensors")):
        with safe_open(str(shard), "np") as f:
            key = (f.metadata() or {}).get("encoder")
        if key:
            return key
    return ""


def pack(folders: list[Path], manifest: dict, out: Path) -> None:
    """The cache folders and a manifest as one tar, cut into pieces the GPU machine can return."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for folder in folders:
            tar.add(folder, arcname=folder.name)
    blob = buffer.getvalue()
    out.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(blob), PIECE):
        (out / f"lm-cache.tar.{i // PIECE:02d}").write_bytes(blob[i:i + PIECE])
    print(f"packed {len(folders)} cache folders, {len(blob) / 2**20:.1f} MiB, into {out}")


def file(args) -> None:
    pieces = sorted(Path(args.pack).glob("lm-cache.tar.*"))
    if not pieces:
        sys.exit(f"lm_gpu: no lm-cache.tar.* in {args.pack}")
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in pieces))) as tar:
        manifest = json.loads(tar.extractfile(MANIFEST).read())
        lm = model(args.model or manifest.get("model", "smollm2"), manifest["tokens"], manifest["dtype"])
        # Each packed folder -> the folder its key reads here, the model's part of the key rewritten.
        targets = {folder: _Cache(key.replace(manifest["model_key"], lm.key, 1), None, "").cache_folder
                   for folder, key in manifest["folders"].items()}
        filed = 0
        for member in tar.getmembers():
            folder, _, name = member.name.partition("/")
            if member.isfile() and folder in targets and name.endswith(".safetensors"):
                with tar.extractfile(member) as src, open(targets[folder] / Path(name).name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                filed += 1
    print(f"filed {filed} shards read on {manifest['device']} ({manifest['dtype']}, {manifest['tokens']} tokens)")
    check(lm, manifest["rows"])


def check(lm: CausalLM, rows) -> None:
    """Every conversation of the packed sets is read from the cache: the model is never run."""
    leaderboard.model_off(lm)
    for name, n, _, _ in rows:
        s = leaderboard.SETS[name]
        convs = leaderboard.conversations(s, s.examples())
        lm.response_features(convs)
        print(f"{name}: all {len(convs)} conversations in the cache")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("read", help="on the GPU machine: read every response, time it, pack the cache")
    r.add_argument("--sets", default=",".join(SETS))
    r.add_argument("--model", default="smollm2", help="a causal LM: smollm2 (packaged), a folder, a .gguf file")
    r.add_argument("--tokens", type=int, default=2048)
    r.add_argument("--dtype", default="bfloat16")
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument("--out", required=True)
    f = sub.add_parser("file", help="here: file a pack's features under this machine's key and check them")
    f.add_argument("pack")
    f.add_argument("--model", default=None, help="this machine's copy of the model the pack was read with (default: its name)")
    args = parser.parse_args(argv)
    read(args) if args.command == "read" else file(args)


if __name__ == "__main__":
    main()
