"""Causal language models as judges and as feature extractors: any `AutoModelForCausalLM` by folder,
hub name or `.gguf` file; SmolLM2-135M-Instruct (packaged, converted once) offline by default.

    lm = CausalLM()                                            # "smollm2"
    lm.pair_verdicts(pairs)                  # (n, 2, 3) log p(A), log p(B), log p(tie), shown both ways round
    swap_average(lm.pair_verdicts(pairs))    # (n, 3) per pair, exactly swap-symmetric
    lm.point_verdicts(conversations, "score", metric="helpfulness")   # (n, 5) log p("1") .. log p("5")
    lm.response_features(conversations)      # (n, 4 + hidden): token log-probs of the response, pooled states

Judging templates are data: YAML files in `encoders/templates/` (pair, pandalm, autoj, score, safety,
prometheus) or a path to your own; `Template.load` documents the fields. The judged text is put into
the template, the model reads it once, and the log-probabilities of the verdict strings right after
the template's `answer` are the output: no text is generated.

What makes it affordable on a CPU:
- the template's shared prefix (system prompt, instructions up to the first field) is run once and
  its key/value cache reused for every text;
- texts are sorted by length and batched (a pair's two orders have the same length, so they share a
  batch), left-padded after the prefix so that every row ends in the last column;
- each field is cut to a token budget (`max_tokens` for the judged text, the template not counted);
- every result is cached on disk by (model, dtype, template, token cap, text) in shards written
  every `SHARD` texts, so an interrupted run resumes where it stopped and a second run is free.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import json
import math
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from referee.encoders.frozen import FrozenEncoder, _folder_fingerprint, text_key
from referee.errors import UserError
from referee.progress import bar as progress_bar
from referee.text import render_context

DEFAULT_MODEL = "smollm2"
PAIR_LABELS = ("A", "B", "tie")
SWAP = [1, 0, 2]  # column order of [A, B, tie] after exchanging A and B
LAST_K = 16  # response_features: mean log-prob of the last this many tokens (does the answer end well?)
SHARD = 64  # texts per cache shard: what an interrupted run can lose
RESPONSE_FEATURES = ("mean_logprob", "min_logprob", f"last{LAST_K}_logprob", "log_tokens")


class TemplateError(UserError):
    """A judging template that cannot be used: names the file and the field."""


# --- templates -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Template:
    """A judging prompt. YAML fields:

    - kind: "pair" (fields {instruction}, {response_1}, {response_2}; verdicts A, B, tie) or "point"
      (fields {instruction}, {response}, {rubric}; verdicts are numbers: a score, or 1/0 for unsafe/safe);
    - chat: true to wrap system + prompt in the model's chat template, false for plain text (base or
      fine-tuned models trained on a fixed layout, such as PandaLM);
    - system: the system prompt (chat only, optional);
    - prompt: the text with its fields in braces;
    - answer: the start of the model's reply; the verdict follows it;
    - verdicts: each verdict -> the strings that say it; log p(verdict) sums over its strings;
    - rubric: (point) the default rubric; {metric} in it is the metric's name;
    - rubrics: (point, optional) metric -> its own rubric; a metric not listed gets `rubric`, and when
      `rubrics` is given without `rubric`, only the metrics it lists can be judged.
    """

    name: str
    kind: str
    chat: bool
    prompt: str
    answer: str
    verdicts: dict
    system: str | None = None
    rubric: str | None = "{metric}"  # None: only the metrics in `rubrics` have one
    rubrics: dict | None = None
    text: str = ""  # the YAML it was read from (a judge saves it, so that it keeps its template)

    FIELDS = {"pair": ("instruction", "response_1", "response_2"), "point": ("instruction", "response", "rubric")}

    @classmethod
    def load(cls, spec: str | Path) -> Template:
        """A built-in template by name (pair, pandalm, autoj, score, safety, prometheus) or a YAML path."""
        path = Path(spec)
        if path.suffix in (".yaml", ".yml"):
            if not path.is_file():
                raise TemplateError(f"{path}: no such template file")
            text, name = path.read_text(encoding="utf-8"), str(path)
        else:
            builtin = resources.files("referee.encoders") / "templates" / f"{spec}.yaml"
            if not builtin.is_file():
                raise TemplateError(f"template {spec!r}: not a built-in template ({', '.join(builtin_templates())}) "
                                    "and not a .yaml file")
            text, name = builtin.read_text(encoding="utf-8"), str(spec)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise TemplateError(f"{name}: not valid YAML ({err})") from None
        if not isinstance(data, dict):
            raise TemplateError(f"{name}: expected a mapping of template fields")
        unknown = set(data) - {"kind", "chat", "system", "prompt", "answer", "verdicts", "rubric", "rubrics"}
        if unknown:
            raise TemplateError(f"{name}: unknown field(s) {sorted(unknown)}")
        for field_name in ("kind", "prompt", "verdicts"):
            if field_name not in data:
                raise TemplateError(f"{name}: missing field {field_name!r}")
        kind = data["kind"]
        if kind not in cls.FIELDS:
            raise TemplateError(f"{name}: field 'kind': expected 'pair' or 'point', got {kind!r}")
        verdicts = data["verdicts"]
        if not isinstance(verdicts, dict) or not verdicts:
            raise TemplateError(f"{name}: field 'verdicts': expected a mapping verdict -> list of strings")
        verdicts = {k: [v] if isinstance(v, str) else v for k, v in verdicts.items()}
        if kind == "pair" and sorted(verdicts) != sorted(PAIR_LABELS):
            raise TemplateError(f"{name}: field 'verdicts': a pair template names A, B and tie, got {sorted(verdicts)}")
        if kind == "point" and not all(isinstance(k, (int, float)) for k in verdicts):
            raise TemplateError(f"{name}: field 'verdicts': a point template's verdicts are numbers, got {list(verdicts)}")
        for key, strings in verdicts.items():
            if not isinstance(strings, list) or not strings or not all(isinstance(s, str) and s for s in strings):
                raise TemplateError(f"{name}: field 'verdicts.{key}': expected a list of non-empty strings")
        for field_name in cls.FIELDS[kind]:
            if f"{{{field_name}}}" not in data["prompt"]:
                raise TemplateError(f"{name}: field 'prompt' has no {{{field_name}}}")
        rubrics = data.get("rubrics")
        if rubrics is not None and (kind != "point" or not isinstance(rubrics, dict) or not rubrics
                                    or not all(isinstance(v, str) and v for v in rubrics.values())):
            raise TemplateError(f"{name}: field 'rubrics': expected (in a point template) a mapping metric -> rubric text")
        rubric = data.get("rubric") or (None if rubrics else "{metric}")
        return cls(name=name, kind=kind, chat=bool(data.get("chat", True)), prompt=data["prompt"],
                   answer=data.get("answer") or "", verdicts=verdicts, system=data.get("system"),
                   rubric=rubric, rubrics={str(k): v for k, v in rubrics.items()} if rubrics else None, text=text)

    def rubric_for(self, metric: str) -> str:
        """The rubric that judges `metric`, {metric} filled in: its own from `rubrics`, else `rubric`.

        >>> Template.load("score").rubric_for("politeness")
        "How well does the answer show 'politeness'?"
        """
        rubric = (self.rubrics or {}).get(metric, self.rubric)
        if rubric is None:
            raise TemplateError(f"{self.name}: no rubric for {metric!r}: field 'rubrics' names only "
                                f"{sorted(self.rubrics)}; add it there, or a default 'rubric'")
        return rubric.replace("{metric}", metric)

    @property
    def labels(self) -> list:
        """The verdicts in output column order: A, B, tie for pairs; ascending values for points."""
        return list(PAIR_LABELS) if self.kind == "pair" else sorted(self.verdicts)

    @property
    def fingerprint(self) -> str:
        fields = [self.kind, self.chat, self.system, self.prompt, self.answer, self.rubric,
                  [[str(k), self.verdicts[k]] for k in self.labels]]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]

    def fill(self, **fields) -> str:
        """The prompt with its fields; other braces are left alone (a response may hold code)."""
        text = self.prompt
        for name in self.FIELDS[self.kind]:
            text = text.replace(f"{{{name}}}", fields[name])
        return text


def builtin_templates() -> list[str]:
    folder = resources.files("referee.encoders") / "templates"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def request_text(conversation) -> str:
    """What a judge is shown as the request: the user's message, or the whole context when there are
    earlier turns or a system prompt."""
    context = conversation.context
    if len(context) == 1 and not conversation.system:
        return context[0].content
    return render_context(conversation)


def swap_average(verdicts: np.ndarray) -> np.ndarray:
    """(n, 2, 3) log-probs, shown as (a, b) then (b, a) -> (n, 3) for [a wins, b wins, tie], the mean of
    both orders. Each entry is one sum x + y (exact in either order), so exchanging a and b in the input
    exchanges the first two columns of the output bit for bit.

    >>> swap_average(np.array([[[-1.0, -2.0, -3.0], [-0.5, -1.5, -3.5]]]))
    array([[-1.25, -1.25, -3.25]])
    """
    first, second = verdicts[:, 0], verdicts[:, 1]
    return (first + second[:, SWAP]) / 2


def normalise(logprobs: np.ndarray) -> np.ndarray:
    """Log-probs of some verdicts -> their probabilities renormalised over those verdicts.

    >>> normalise(np.log([[0.2, 0.2, 0.1]])).round(2)
    array([[0.4, 0.4, 0.2]])
    """
    z = logprobs - logprobs.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def expected_value(logprobs: np.ndarray, values) -> np.ndarray:
    """(n, k) verdict log-probs -> (n,) expected verdict value.

    >>> expected_value(np.log([[0.5, 0.5, 0.0]]) , [1, 2, 3])
    array([1.5])
    """
    return normalise(logprobs) @ np.asarray(values, dtype=np.float64)


# --- the model -------------------------------------------------------------------------------------

class _Cache(FrozenEncoder):
    """FrozenEncoder's on-disk cache (safetensors shards, atomic writes, resumable) over a function of
    texts: the key names the model, dtype, template and token cap, the text is the prompt's variable part."""

    def __init__(self, key: str, compute, name: str):
        super().__init__(name, batch_tokens=SHARD, progress=False)
        self._key, self._compute = key, compute

    def _lengths(self, texts: list[str]) -> list[int]:
        # One "token" a prompt: FrozenEncoder's token budget then hands `_encode` SHARD prompts at a
        # time; CausalLM batches them by their real length itself.
        return [1] * len(texts)

    @property
    def key(self) -> str:
        return self._key

    def _encode(self, texts: list[str]) -> np.ndarray:
        self.texts_encoded += len(texts)
        return self._compute(texts)


def _device(device: str | None) -> str:
    """`device`, or cuda when available, else cpu."""
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: str | None = None) -> str:
    """bfloat16 where the hardware computes in it (CUDA, CPUs with AMX tiles), float32 elsewhere. On a
    CPU without bfloat16 units every operand is converted: SmolLM2's verdicts and response features took
    3.4 times the CPU time of float32 on an AMD EPYC with AVX2 only, where an AMX CPU saved 25% (docs/llm.md)."""
    import torch

    device = _device(device)
    if device.startswith("cuda"):
        return "bfloat16"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.x: absent means "no"
    return "bfloat16" if device == "cpu" and amx is not None and amx() else "float32"


class CausalLM:
    """A causal LM, loaded on first use, that reads verdicts and response likelihoods off its logits.

    model: "smollm2" (the packaged SmolLM2-135M-Instruct), an HF folder, a hub name or a .gguf file.
    max_tokens: the cap on the judged text per prompt (request plus responses; the template is extra).
    batch_size: prompts per forward pass. dtype: "float32", "bfloat16" or "float16"; None picks one for
    the device (`default_dtype`). device: "cpu", "cuda", ... (default: cuda when available).
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, max_tokens: int = 1024, batch_size: int = 8,
                 dtype: str | None = None, device: str | None = None, progress: bool = True):
        dtype = dtype or default_dtype(device)
        if dtype not in ("float32", "bfloat16", "float16"):
            raise UserError(f"CausalLM: dtype must be float32, bfloat16 or float16, got {dtype!r}")
        if max_tokens < 16:
            raise UserError(f"CausalLM: max_tokens must be at least 16, got {max_tokens}")
        self.model = model
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self.progress = progress
        self.texts_computed = 0  # prompts the model actually read (the rest came from the cache)
        self._net = self._tokenizer = self._head = None
        self._prefixes: dict[tuple[int, ...], object] = {}

    # --- loading -------------------------------------------------------------------------------

    def _load(self):
        if self._net is None:
            import torch

            from referee.encoders.causal_lm import load_policy

            device = _device(self.device)
            net, tokenizer = load_policy(self.model, dtype=getattr(torch, self.dtype))
            self._net, self._tokenizer, self.device = net.to(device).eval(), tokenizer, device
        return self._net, self._tokenizer

    @property
    def key(self) -> str:
        """Names the weights whose outputs the cache holds (a retrained folder gets a new key)."""
        from referee.encoders.causal_lm import resolve

        source = resolve(self.model)
        if Path(source).is_dir():
            return f"{Path(source).resolve()}@{_folder_fingerprint(Path(source))}"
        return source

    def _tokens(self, text: str) -> list[int]:
        return self._load()[1](text, add_special_tokens=False)["input_ids"]

    def _clip(self, text: str, budget: int) -> str:
        """`text` cut to its first `budget` tokens (marked with " …")."""
        ids = self._tokens(text)
        return text if len(ids) <= budget else self._load()[1].decode(ids[:budget]) + " …"

    # --- prompts -------------------------------------------------------------------------------

    def _wrap(self, template: Template, user: str) -> str:
        """The whole prompt text up to the verdict: chat-wrapped or plain, then the answer's start."""
        if not template.chat:
            return user + template.answer
        messages = ([{"role": "system", "content": template.system}] if template.system else [])
        messages.append({"role": "user", "content": user})
        tokenizer = self._load()[1]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + template.answer

    def _split(self, template: Template, filled: list[str], marker_text: str) -> tuple[str, list[str]]:
        """(prefix, suffixes): the prompt text shared by every filled prompt, and what follows it.
        `marker_text` is the prompt filled with a marker in each field: what precedes the first marker
        is the shared prefix."""
        marker = "\x00FIELD\x00"
        prefix = self._wrap(template, marker_text).split(marker)[0]
        wholes = [self._wrap(template, user) for user in filled]
        if not all(w.startswith(prefix) for w in wholes):  # a chat template that rewrites its content
            prefix = ""
        return prefix, [w[len(prefix):] for w in wholes]

    def _verdict_ids(self, template: Template) -> list[list[list[int]]]:
        """Per verdict (in `labels` order), the token ids of each string that says it, as read after
        the answer: the string's tokens when tokenized on their own."""
        out = []
        for label in template.labels:
            out.append([self._tokens(s) for s in template.verdicts[label]])
        firsts = {}
        for label, strings in zip(template.labels, out):
            for ids in strings:
                if len(ids) == 1 and firsts.setdefault(ids[0], label) != label:
                    raise TemplateError(f"{template.name}: verdicts {firsts[ids[0]]!r} and {label!r} are the same token")
        return out

    # --- the forward pass --------------------------------------------------------------------------

    def _prefix_cache(self, prefix_ids: list[int]):
        """The key/value cache of the shared prefix, computed once per prefix."""
        import torch

        key = tuple(prefix_ids)
        if key not in self._prefixes:
            net, _ = self._load()
            with torch.inference_mode():
                out = net.base_model(input_ids=torch.tensor([prefix_ids], device=self.device), use_cache=True)
            self._prefixes[key] = out.cache if hasattr(out, "cache") else out.past_key_values
        return self._prefixes[key]

    def _forward(self, prefix_ids: list[int], rows: list[list[int]], continuations: list[list[int]] = ()):
        """Hidden states of the last layer over each row after the shared prefix, [(len_i, d)], and for
        each continuation (a verdict of several tokens) its summed log-prob after each row, (n, c)."""
        import torch

        net, tokenizer = self._load()
        n, width, p = len(rows), max(len(r) for r in rows), len(prefix_ids)
        ids = torch.full((n, width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, row in enumerate(rows):  # left padding: every row ends in the last column
            ids[i, width - len(row):] = torch.tensor(row)
            mask[i, width - len(row):] = 1
        positions = p + (mask.cumsum(1) - 1).clamp(min=0)
        cache = None
        if p:
            cache = copy.deepcopy(self._prefix_cache(prefix_ids))
            cache.batch_repeat_interleave(n)
            mask = torch.cat([torch.ones((n, p), dtype=torch.long), mask], 1)
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        with torch.inference_mode():
            out = net.base_model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                 **{_cache_kwarg(type(net.base_model).forward): cache}, use_cache=bool(continuations))
            hidden = out.last_hidden_state  # (n, width, d)
            scores = torch.zeros((n, len(continuations)), dtype=torch.float64)
            for c, tokens in enumerate(continuations):
                # tokens[0] is scored from the last row position; the rest after feeding tokens[:-1].
                first = self._logprobs(hidden[:, -1])[:, tokens[0]]
                extra = torch.tensor([tokens[:-1]] * n, device=self.device)
                more = net.base_model(input_ids=extra, cache=out.cache,
                                      attention_mask=torch.cat([mask, torch.ones_like(extra)], 1),
                                      position_ids=positions[:, -1:] + 1 + torch.arange(len(tokens) - 1, device=self.device),
                                      use_cache=True).last_hidden_state
                rest = self._logprobs(more).gather(2, torch.tensor([tokens[1:]] * n, device=self.device)[..., None])
                scores[:, c] = (first + rest[..., 0].sum(1)).double().cpu()
                out.cache.crop(-(len(tokens) - 1))  # back to the rows alone for the next continuation
        return [hidden[i, width - len(row):] for i, row in enumerate(rows)], scores

    def _logprobs(self, hidden):
        """(..., d) hidden states -> (..., vocab) float32 log-probs; the output layer runs in float32
        (bfloat16 logits keep about three digits, too few to compare verdicts)."""
        import torch

        if self._head is None:
            head = self._load()[0].get_output_embeddings()
            self._head = (head.weight.float(), None if head.bias is None else head.bias.float())
        return torch.log_softmax(torch.nn.functional.linear(hidden.float(), *self._head), -1)

    def _batches(self, rows: list[list[int]]):
        for start in range(0, len(rows), self.batch_size):
            yield start, rows[start:start + self.batch_size]

    def _cached(self, kind: str, template_key: str, texts: list[str], compute, desc: str) -> np.ndarray:
        """(n, k) results of `compute(texts)`, read from the cache where there, computed and stored in
        length-sorted shards of `SHARD` texts where not."""
        cache = _Cache(f"lm|{kind}|{self.key}|{self.dtype}|{self.max_tokens}|{template_key}", compute, desc)
        index = cache._read_index()
        todo = sorted({t for t in texts if text_key(t) not in index}, key=len)
        if todo:
            bar = progress_bar(total=len(todo), desc=desc, unit="prompt", enabled=self.progress)
            for start in range(0, len(todo), SHARD):
                cache.transform(todo[start:start + SHARD])
                bar.update(len(todo[start:start + SHARD]))
            bar.close()
            self.texts_computed += cache.texts_encoded
        return cache.transform(texts).astype(np.float64)

    # --- verdicts --------------------------------------------------------------------------------

    def _verdicts(self, template: Template, prompts: list[dict], desc: str) -> np.ndarray:
        """(n, k) log p(verdict) for each filled prompt, k = len(template.labels)."""
        filled = [template.fill(**fields) for fields in prompts]
        marked = template.fill(**{name: "\x00FIELD\x00" for name in template.FIELDS[template.kind]})
        prefix, suffixes = self._split(template, filled, marked)
        verdict_ids = self._verdict_ids(template)
        singles = [ids[0] for strings in verdict_ids for ids in strings if len(ids) == 1]
        multis = [ids for strings in verdict_ids for ids in strings if len(ids) > 1]

        def compute(texts: list[str]) -> np.ndarray:
            import torch

            prefix_ids = self._prefix_ids(template, prefix)
            rows = [self._tokens(t) for t in texts]
            out = []
            for _, batch in self._batches(rows):
                hidden, multi = self._forward(prefix_ids, batch, multis)
                with torch.inference_mode():
                    last = torch.stack([h[-1] for h in hidden])
                    logp = self._logprobs(last).double().cpu()
                single = logp[:, singles] if singles else torch.zeros((len(batch), 0), dtype=torch.float64)
                out.append(self._per_label(verdict_ids, single.numpy(), multi.numpy()))
            return np.concatenate(out).astype(np.float32)

        return self._cached("verdicts", f"{template.fingerprint}|{prefix}", suffixes, compute, desc)

    def _prefix_ids(self, template: Template, prefix: str) -> list[int]:
        """The prefix's tokens; plain-text templates start with the model's own special tokens (BOS)."""
        return self._load()[1](prefix, add_special_tokens=not template.chat)["input_ids"]

    @staticmethod
    def _per_label(verdict_ids, single: np.ndarray, multi: np.ndarray) -> np.ndarray:
        """Columns per verdict string -> (n, k) log p(verdict), a logsumexp over its strings."""
        columns, s, m = [], 0, 0
        for strings in verdict_ids:
            parts = []
            for ids in strings:
                if len(ids) == 1:
                    parts.append(single[:, s])
                    s += 1
                else:
                    parts.append(multi[:, m])
                    m += 1
            columns.append(np.logaddexp.reduce(np.stack(parts, 1), axis=1))
        return np.stack(columns, 1)

    def pair_verdicts(self, pairs, template: str | Template = "pair") -> np.ndarray:
        """(n, 2, 3) log p(A), log p(B), log p(tie) for each pair shown as (a, b) and as (b, a); in the
        second row "A" is b. `swap_average` turns it into one exactly swap-symmetric row per pair."""
        template = template if isinstance(template, Template) else Template.load(template)
        if template.kind != "pair":
            raise TemplateError(f"{template.name}: a {template.kind} template, but pair_verdicts needs a pair template")
        pairs = list(pairs)
        budget_request, budget_response = self.max_tokens // 4, (self.max_tokens - self.max_tokens // 4) // 2
        prompts = []
        for ex in pairs:
            request = self._clip(request_text(ex.a), budget_request)
            a = self._clip(ex.a.response or "", budget_response)
            b = self._clip(ex.b.response or "", budget_response)
            prompts.append(dict(instruction=request, response_1=a, response_2=b))
            prompts.append(dict(instruction=request, response_1=b, response_2=a))
        if not prompts:
            return np.zeros((0, 2, 3))
        logp = self._verdicts(template, prompts, f"{Path(str(self.model)).name}: pair verdicts")
        return logp.reshape(len(pairs), 2, 3)

    def point_verdicts(self, conversations, template: str | Template = "score", *, metric: str = "",
                       rubric: str | None = None) -> np.ndarray:
        """(n, k) log p of each verdict value (`Template.load(...).labels`: e.g. scores 1-5, or 0/1 for
        safe/unsafe) for each conversation's response, under `rubric` (default: the template's, with
        `metric` filled in)."""
        template = template if isinstance(template, Template) else Template.load(template)
        if template.kind != "point":
            raise TemplateError(f"{template.name}: a {template.kind} template, but point_verdicts needs a point template")
        rubric = rubric.replace("{metric}", metric) if rubric else template.rubric_for(metric)
        budget_request = self.max_tokens // 4
        prompts = [dict(instruction=self._clip(request_text(c), budget_request),
                        response=self._clip(c.response or "", self.max_tokens - budget_request), rubric=rubric)
                   for c in conversations]
        if not prompts:
            return np.zeros((0, len(template.labels)))
        return self._verdicts(template, prompts, f"{Path(str(self.model)).name}: {metric or template.kind} verdicts")

    # --- response likelihood and hidden states -------------------------------------------------------

    def response_features(self, conversations) -> np.ndarray:
        """(n, 4 + d): the response's mean, min and last-`LAST_K` token log-prob given the conversation
        before it, log(1 + its token count), then the last layer's hidden states averaged over its tokens.
        The context keeps its most recent tokens; the response its first ones (`max_tokens` in all)."""
        conversations = list(conversations)
        if not conversations:
            return np.zeros((0, len(RESPONSE_FEATURES)))
        _, tokenizer = self._load()
        marker = "\x00FIELD\x00"
        shared = tokenizer.apply_chat_template([{"role": "user", "content": marker}], tokenize=False,
                                               add_generation_prompt=False).split(marker)[0]
        # Conversations whose rendering starts with the default prefix (no system prompt of their own,
        # in ChatML) share its cache; the others are read whole. The cache text is context and response
        # split by a character no chat template writes.
        groups: dict[str, list[int]] = {shared: [], "": []}
        texts = []
        for i, conv in enumerate(conversations):
            messages = ([{"role": "system", "content": conv.system}] if conv.system else [])
            messages += [{"role": t.role, "content": t.content} for t in conv.context]
            context = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prefix = shared if context.startswith(shared) else ""
            groups[prefix].append(i)
            texts.append(context[len(prefix):] + "\x00" + (conv.response or ""))
        out = np.zeros((len(texts), 0))
        for prefix, members in groups.items():
            if members:
                got = self._response_features(prefix, [texts[i] for i in members])
                if out.shape[1] == 0:
                    out = np.zeros((len(texts), got.shape[1]))
                out[members] = got
        return out

    def _response_features(self, prefix: str, texts: list[str]) -> np.ndarray:
        _, tokenizer = self._load()

        def compute(batch_texts: list[str]) -> np.ndarray:
            import torch

            prefix_ids = self._tokens(prefix)
            rows, starts = [], []
            for text in batch_texts:
                context, response = text.split("\x00", 1)
                c, r = self._tokens(context), self._tokens(response) or [tokenizer.eos_token_id]
                keep_c = min(len(c), max(self.max_tokens // 4, self.max_tokens - len(r)))
                keep_r = min(len(r), self.max_tokens - keep_c)
                rows.append(c[len(c) - keep_c:] + r[:keep_r])
                starts.append(keep_c)
            out = []
            for start, batch in self._batches(rows):
                hidden, _ = self._forward(prefix_ids, batch)
                with torch.inference_mode():
                    for h, row, first in zip(hidden, batch, starts[start:start + len(batch)]):
                        # Token j is predicted at position j - 1; first >= 1 (the assistant's role tag).
                        lp = self._logprobs(h[first - 1:-1]).gather(1, torch.tensor(row[first:], device=h.device)[:, None])
                        lp = lp[:, 0].double().cpu().numpy()
                        pooled = h[first:].float().mean(0).cpu().numpy()
                        out.append(np.concatenate([[lp.mean(), lp.min(), lp[-LAST_K:].mean(), math.log1p(len(lp))],
                                                   pooled]))
            return np.asarray(out, dtype=np.float32)

        return self._cached("response", prefix, texts, compute, f"{Path(str(self.model)).name}: response log-probs")


def likelihood_ratio(features_a: np.ndarray, features_b: np.ndarray) -> np.ndarray:
    """The length-normalised log-likelihood ratio of two responses to one request: mean token log-prob
    of a minus that of b (columns 0 of `response_features`).

    >>> likelihood_ratio(np.array([[-1.0, -3.0]]), np.array([[-1.5, -2.0]]))
    array([0.5])
    """
    return features_a[:, 0] - features_b[:, 0]


# --- the judges' backend ---------------------------------------------------------------------------

def parse_spec(spec: str | None, default_template: str) -> tuple[str, str]:
    """A judge's `encoder` for features="llm" -> (model, template): "MODEL" or "MODEL#TEMPLATE", the
    template a built-in name or a YAML path; None is the packaged SmolLM2 with `default_template`.

    >>> parse_spec("WeOpenML/PandaLM-7B-v1#pandalm", "pair")
    ('WeOpenML/PandaLM-7B-v1', 'pandalm')
    >>> parse_spec(None, "pair")
    ('smollm2', 'pair')
    """
    model, _, template = (spec or DEFAULT_MODEL).partition("#")
    return model or DEFAULT_MODEL, template or default_template


class LLMFeatures:
    """The feature backend `features="llm"` of the judges: a `CausalLM` and one template. Nothing to
    fit; `save` writes the model spec, settings and the template's YAML (so that a saved judge keeps
    the prompt it was calibrated on, whatever later versions ship)."""

    FORMAT = "referee-llm/1"

    def __init__(self, spec: str | None, default_template: str, *, max_tokens: int = 1024, batch_size: int = 8,
                 dtype: str | None = None, progress: bool = True, template: Template | None = None):
        model, name = parse_spec(spec, default_template)
        self.template = template or Template.load(name)
        self.lm = CausalLM(model, max_tokens=max_tokens, batch_size=batch_size, dtype=dtype, progress=progress)

    def fit(self, texts=None) -> LLMFeatures:
        return self  # a prompted model: nothing to learn here (the judge's head learns)

    def pair(self, examples) -> np.ndarray:
        """(n, 2, 3) verdict log-probs, both orders (`CausalLM.pair_verdicts`)."""
        return self.lm.pair_verdicts(examples, self.template)

    def point(self, conversations, metric: str = "") -> np.ndarray:
        """(n, k) verdict log-probs (`CausalLM.point_verdicts`)."""
        return self.lm.point_verdicts(conversations, self.template, metric=metric)

    def points(self, conversations, metrics: list[str]) -> np.ndarray:
        """(n, k) verdict log-probs of each conversation under the rubric of its own metric in `metrics`,
        one `point_verdicts` call per distinct metric (its prompts share batches and a cache shard). Every
        metric's rubric is looked up before the model reads anything: a missing one stops the run at once."""
        if self.template.kind != "point":
            raise TemplateError(f"{self.template.name}: a {self.template.kind} template, but this judge reads "
                                "one response at a time and needs a point template (score, safety, prometheus)")
        order = list(dict.fromkeys(metrics))
        rubrics = {m: self.template.rubric_for(m) for m in order}
        out = np.zeros((len(metrics), len(self.template.labels)))
        for metric in order:
            rows = [i for i, m in enumerate(metrics) if m == metric]
            out[rows] = self.lm.point_verdicts([conversations[i] for i in rows], self.template, metric=metric,
                                               rubric=rubrics[metric])
        return out

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "template.yaml").write_text(self.template.text, encoding="utf-8")
        meta = {"format": self.FORMAT, "model": self.lm.model, "template": self.template.name,
                "max_tokens": self.lm.max_tokens, "batch_size": self.lm.batch_size, "dtype": self.lm.dtype}
        (folder / "llm.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> LLMFeatures:
        folder = Path(folder)
        path = folder / "llm.json"
        if not path.is_file():
            raise UserError(f"{folder}: missing llm.json; this judge folder is incomplete")
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != cls.FORMAT:
            raise UserError(f"{path}: format {meta.get('format')!r}, expected {cls.FORMAT!r}")
        template = Template.load(folder / "template.yaml")
        template = replace(template, name=meta["template"])
        return cls(meta["model"], meta["template"], max_tokens=meta["max_tokens"], batch_size=meta["batch_size"],
                   dtype=meta["dtype"], template=template)


@functools.cache
def _cache_kwarg(forward) -> str:
    """The name a model's `forward` takes its KV cache by: `cache` in recent transformers 5 releases,
    `past_key_values` before (5.17 accepts and ignores an unknown `cache`). Read once per model class."""
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


class LMStates:
    """The feature backend `features="lm"` of the pair, reward and safety judges: a causal LM's view of
    each response read after the conversation before it (`CausalLM.response_features`: its mean, min
    and last-16 token log-probs, log token count, and the last layer's states averaged over it),
    standardised with the training rows' mean and spread (a few of an LM's state dimensions run to
    hundreds where the rest stay near 1; one L2 penalty needs them on one scale).

    It reads conversations, not texts: the same response means something else after another request.
    `max_tokens` (context and response together, the context cut first): None is `CPU_TOKENS` on a CPU,
    where SmolLM2-135M reads 0.5-1.9 s a text at 512 tokens (`bench/leaderboard.py`), and `GPU_TOKENS` on
    a GPU; a saved judge keeps the cap it learnt with. A bigger model is one name away on a GPU
    (`LMStates("Qwen/Qwen2.5-1.5B-Instruct")`).
    """

    FORMAT = "referee-lm-states/1"
    FILE = "llm.json"  # the file name `judges.folder.check_encoder` reads the model's name from
    CPU_TOKENS, GPU_TOKENS = 512, 2048
    DTYPE = None  # None: `default_dtype()`. These three are what a run changes to read a GPU's cached
    # features on a CPU (bench/lm_gpu.py): a saved judge keeps its own.

    def __init__(self, spec: str | None = None, *, max_tokens: int | None = None, batch_size: int = 8,
                 dtype: str | None = None, progress: bool = True):
        if max_tokens is None:
            max_tokens = self.GPU_TOKENS if _device(None).startswith("cuda") else self.CPU_TOKENS
        self.lm = CausalLM(spec or DEFAULT_MODEL, max_tokens=max_tokens, batch_size=batch_size,
                           dtype=dtype or self.DTYPE, progress=progress)

    def fit(self, conversations) -> LMStates:
        x = self.lm.response_features(conversations)
        self.mean_, self.std_ = x.mean(0), x.std(0) + 1e-6
        return self

    def transform(self, conversations) -> np.ndarray:
        """(n, 4 + hidden) float32, standardised."""
        return ((self.lm.response_features(conversations) - self.mean_) / self.std_).astype(np.float32)

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": self.FORMAT, "model": self.lm.model, "max_tokens": self.lm.max_tokens,
                "batch_size": self.lm.batch_size, "dtype": self.lm.dtype}
        (folder / self.FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        save_file({"mean": np.ascontiguousarray(self.mean_), "std": np.ascontiguousarray(self.std_)},
                  str(folder / "scale.safetensors"))

    @classmethod
    def load(cls, folder: str | Path) -> LMStates:
        from safetensors.numpy import load_file

        folder = Path(folder)
        path, scale = folder / cls.FILE, folder / "scale.safetensors"
        for needed in (path, scale):
            if not needed.is_file():
                raise UserError(f"{folder}: missing {needed.name}; this judge folder is incomplete")
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != cls.FORMAT:
            raise UserError(f"{path}: format {meta.get('format')!r}, expected {cls.FORMAT!r}")
        states = cls(meta["model"], max_tokens=meta["max_tokens"], batch_size=meta["batch_size"], dtype=meta["dtype"])
        tensors = load_file(str(scale))
        states.mean_, states.std_ = tensors["mean"], tensors["std"]
        return states
