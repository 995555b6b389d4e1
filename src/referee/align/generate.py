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
    top_k: int = 50  # with do_sample only; transformers' default
    repetition_penalty: float = 1.1  # small models loop without it
    batch_size: int = 8
    seed: int = 0
    max_prompt_tokens: int = 512  # longer prompts keep their end (the request)

    def __post_init__(self):
        for name in ("max_new_tokens", "batch_size", "max_prompt_tokens", "top_k"):
            if getattr(self, name) < 1:
                raise UserError(f"Decoding: field {name!r}: expected an integer >= 1, got {getattr(self, name)!r}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise UserError(f"Decoding: temperature and repetition_penalty must be > 0 and top_p in (0, 1], got "
                            f"{self.temperature}, {self.repetition_penalty}, {self.top_p}")

    def to_dict(self) -> dict:
        return asdict(self)


def generate(model, tokenizer, prompts, decoding: Decoding = Decoding(), *, n: int = 1, progress: bool = True,
             desc: str = "generating") -> list[str]:
    """`n` responses per PromptExample (prompt after prompt, in order), special tokens removed.

    Prompts are batched by length (less padding), padded on the left so every row's generation starts
    right after its prompt, and returned in the input order. A batch holds `decoding.batch_size` rows:
    with n > 1, batch_size // n prompts (at least one), each read once and its attention cache copied n
    times (the prompt's forward pass was a third of a sampling batch's time: 12 of 35 s for 8 prompts x 8
    answers here, docs/align.md)."""
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
    sampling = dict(logits_processor=[TopKTopPSampler(decoding)]) if decoding.do_sample else {}
    responses: list[str] = [""] * (len(texts) * n)
    per_batch = max(1, decoding.batch_size // n)
    batches = [order[i:i + per_batch] for i in range(0, len(order), per_batch)]
    for batch in bar(batches, desc=desc, unit="batch", enabled=progress):
        # The template already wrote the special tokens (BOS, role markers): add none twice.
        enc = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, truncation=True,
                        max_length=decoding.max_prompt_tokens, add_special_tokens=False).to(device)
        with torch.no_grad():
            inputs = prefilled(model, enc, n) if n > 1 else dict(enc)
            # do_sample=False: a sampled decoding draws its tokens in TopKTopPSampler, and generate() keeps them
            out = model.generate(**inputs, max_new_tokens=decoding.max_new_tokens, do_sample=False,
                                 repetition_penalty=decoding.repetition_penalty, pad_token_id=tokenizer.pad_token_id,
                                 **sampling)
        new = out[:, enc["input_ids"].shape[1]:]  # (batch x n, generated tokens): everything after the padded prompt
        rows = [i * n + k for i in batch for k in range(n)]
        for row, text in zip(rows, tokenizer.batch_decode(new, skip_special_tokens=True)):
            responses[row] = text.strip()
    return responses


class TopKTopPSampler:
    """Draws the next token (temperature, then top-k, then top-p among those k: transformers' order and
    rule) and hands generate() a choice to take greedily: the drawn token's score kept, every other -inf.

    By hand because transformers' sampler sorts the whole vocabulary for top-p and draws one exponential
    per vocabulary entry for its multinomial after top-k has left 50 candidates: 0.14 s of a 0.56 s
    decoding step for 64 rows of SmolLM2 (49k tokens) on these two cores (docs/align.md). Sorting and
    drawing among the k alone is the same distribution; the draws (from torch's seeded generator) differ."""

    def __init__(self, decoding: Decoding):
        self.temperature, self.top_k, self.top_p = decoding.temperature, decoding.top_k, decoding.top_p

    def candidates(self, scores):
        """(token ids, their probabilities) per row: the distribution a token is drawn from."""
        import torch

        top, index = torch.topk(scores / self.temperature, min(self.top_k, scores.shape[-1]))  # descending
        probs = top.softmax(-1)
        # top-p keeps a token when the mass before it is under top_p (the first token always)
        probs = probs.masked_fill(probs.cumsum(-1) - probs >= self.top_p, 0.0)
        return index, probs / probs.sum(-1, keepdim=True)

    def __call__(self, input_ids, scores):
        import torch

        index, probs = self.candidates(scores)
        chosen = index.gather(-1, torch.multinomial(probs, 1))
        return torch.full_like(scores, -float("inf")).scatter(-1, chosen, scores.gather(-1, chosen))


def prefilled(model, enc, n: int) -> dict:
    """generate()'s inputs for n answers to each prompt of `enc`, with the prompts' attention cache
    computed once and repeated n times; generate() then reads only each prompt's last token. The
    positions are generate()'s own for left padding (pads at 0), so the answers are those of n copies
    of the prompt (tests/test_align.py checks it greedily). transformers has prefix caching for one
    prompt and num_return_sequences, which repeats the prompt before reading it: neither does this."""
    import inspect

    from transformers import DynamicCache

    ids, mask = enc["input_ids"], enc["attention_mask"]
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    decoder = model.base_model  # the decoder alone: the vocabulary projection of every prompt position would be wasted
    # transformers 5.x calls it `cache` (past_key_values is a deprecated alias); 4.x past_key_values
    key = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"
    cache = DynamicCache()
    decoder(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True,
            **{key: cache})
    cache.batch_repeat_interleave(n)
    return {"input_ids": ids.repeat_interleave(n, 0), "attention_mask": mask.repeat_interleave(n, 0), key: cache}
