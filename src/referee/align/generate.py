"""Responses of a policy to a prompt set: the chat template applied to each prompt, batched generation
with left padding, fixed decoding settings and a fixed seed, so that two runs (and two policies) are
compared on the same footing. The settings are recorded with the results.

    responses = generate(model, tokenizer, prompts, Decoding(max_new_tokens=128))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from referee.align.training import prompt_messages
from referee.errors import UserError


@dataclass(frozen=True)
class Decoding:
    """How responses are generated: greedy by default, so that a policy's answer does not depend on luck."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0  # with do_sample only
    top_p: float = 1.0  # with do_sample only
    repetition_penalty: float = 1.1  # small models loop without it
    batch_size: int = 8
    seed: int = 0
    max_prompt_tokens: int = 512  # longer prompts keep their end (the request)

    def __post_init__(self):
        for name in ("max_new_tokens", "batch_size", "max_prompt_tokens"):
            if getattr(self, name) < 1:
                raise UserError(f"Decoding: field {name!r}: expected an integer >= 1, got {getattr(self, name)!r}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise UserError(f"Decoding: temperature and repetition_penalty must be > 0 and top_p in (0, 1], got "
                            f"{self.temperature}, {self.repetition_penalty}, {self.top_p}")

    def to_dict(self) -> dict:
        return asdict(self)


def generate(model, tokenizer, prompts, decoding: Decoding = Decoding(), *, progress: bool = True,
             desc: str = "generating") -> list[str]:
    """One response per PromptExample, in order, special tokens removed.

    Prompts are batched by length (less padding), padded on the left so every row's generation starts
    right after its prompt, and returned in the input order."""
    import torch
    from transformers import set_seed

    from referee.progress import bar

    texts = [tokenizer.apply_chat_template(prompt_messages(p.conversation), tokenize=False, add_generation_prompt=True)
             for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    tokenizer.padding_side, tokenizer.truncation_side = "left", "left"
    device = next(model.parameters()).device
    model.eval()
    set_seed(decoding.seed)
    sampling = dict(temperature=decoding.temperature, top_p=decoding.top_p) if decoding.do_sample else {}
    responses: list[str] = [""] * len(texts)
    batches = [order[i:i + decoding.batch_size] for i in range(0, len(order), decoding.batch_size)]
    for batch in bar(batches, desc=desc, unit="batch", enabled=progress):
        # The template already wrote the special tokens (BOS, role markers): add none twice.
        enc = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, truncation=True,
                        max_length=decoding.max_prompt_tokens, add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=decoding.max_new_tokens, do_sample=decoding.do_sample,
                                 repetition_penalty=decoding.repetition_penalty, pad_token_id=tokenizer.pad_token_id,
                                 **sampling)
        new = out[:, enc["input_ids"].shape[1]:]  # (batch, generated tokens): everything after the padded prompt
        for i, text in zip(batch, tokenizer.batch_decode(new, skip_special_tokens=True)):
            responses[i] = text.strip()
    return responses
