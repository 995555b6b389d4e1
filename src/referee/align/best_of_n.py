"""Best-of-n with referee's judges, and the judge-labelled preference pairs it yields.

The policy samples `n` answers per prompt (temperature, top-p, one seed); the safety and helpfulness
judges score each; the rule below keeps one. The same ranking gives DPO its on-policy pairs: the best
answer as chosen, the worst as rejected.

The rule, "safe first, then helpful":
  1. candidates the safety judge passes (p(unsafe) at or below its threshold) beat those it flags;
  2. among the passed ones, the highest reward (or score) wins;
  3. when every candidate is flagged, the one with the lowest p(unsafe) wins.
The worst answer is the same order reversed: the most unsafe flagged one, else the lowest reward.

With a request judge among the referees (the gate: a safety judge of requests alone), a prompt whose
request it flags is answered with a plain refusal (`REFUSAL`, added as one more candidate and ranked
first; the samples follow in the order above). A policy of 135M parameters seldom refuses when it
samples (7% of its answers to harmful prompts in docs/align.md), so best-of-n alone can keep few
refusals; and the refusal judge, trained on GPT-4-class answers, calls some of SmolLM2's compliances
refusals ("The art of self-harming is all about ..."), so a sampled "refusal" is not kept in its place.

    candidates = sample(model, tokenizer, prompts, n=8, decoding=Decoding(do_sample=True, temperature=0.7, top_p=0.9))
    kept, records, judged = best_of_n(prompts, candidates, referees)  # one answer per prompt, and why
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from referee.align.generate import Decoding, generate
from referee.errors import UserError

RULE = ("safe first, then helpful: among the n answers the safety judge passes, the highest reward; "
        "when it flags all n, the lowest p(unsafe)")
GATED_RULE = RULE + "; a prompt the request judge flags is answered with a plain refusal"
REFUSAL = "I'm sorry, but I can't help with that."


def order(judged: dict[str, np.ndarray]) -> np.ndarray:
    """Candidate indices from best to worst under the rule.

    >>> order({"unsafe": np.array([False, True, False]), "p_unsafe": np.array([.1, .9, .2]),
    ...        "reward": np.array([.5, 2., .7])}).tolist()   # 2 (safe, reward .7), 0 (safe, .5), 1 (unsafe)
    [2, 0, 1]
    """
    unsafe = np.asarray(judged["unsafe"], bool)
    # lexsort sorts by the last key first: flagged after passed; passed by reward (descending),
    # flagged by p(unsafe) (ascending)
    within = np.where(unsafe, np.asarray(judged["p_unsafe"], float), -np.asarray(judged["reward"], float))
    return np.lexsort((within, unsafe))


def sample(model, tokenizer, prompts, n: int, decoding: Decoding, *, progress: bool = True,
           desc: str = "sampling") -> list[list[str]]:
    """`n` sampled answers per prompt (a list of n strings per prompt, in prompt order).

    A prompt's n answers come from one generation call (its attention cache read once, copied n times),
    so they differ by the sampler's draws alone; one seed fixes them all."""
    if n < 1:
        raise UserError(f"best-of-n: n must be >= 1, got {n}")
    if not decoding.do_sample:
        raise UserError("best-of-n: greedy decoding gives n identical answers; sample (do_sample=True)")
    answers = generate(model, tokenizer, prompts, decoding, n=n, progress=progress, desc=desc)
    return [answers[i * n:(i + 1) * n] for i in range(len(prompts))]


JUDGED = {"p_unsafe": float, "unsafe": bool, "reward": float, "refused": bool}  # what the rule and the pairs read


def best_of_n(prompts, candidates: list[list[str]], referees, gate: bool = True, known: list[dict] | None = None):
    """The answer the rule keeps for each prompt; per prompt the judges' view of every candidate (lists
    of p_unsafe, unsafe, reward, refused, the kept and worst indices, gated); and the candidates judged
    (those given, with `REFUSAL` appended on the prompts the request judge flags when `gate`).
    `known`: the records of an earlier call on the same candidates, whose verdicts are reused (only the
    appended refusals are judged)."""
    gated = referees.gate(prompts) if gate else np.zeros(len(prompts), bool)
    if known is None:  # every candidate in one call: per prompt, the judges' fixed cost came twice over (docs/align.md)
        every = referees.judge([p for p, answers in zip(prompts, candidates) for _ in answers],
                               [a for answers in candidates for a in answers])
        ends = np.cumsum([len(answers) for answers in candidates])
        known = [{k: np.asarray(every[k])[end - len(answers):end] for k in JUDGED} for end, answers in zip(ends, candidates)]
    flagged_at = np.flatnonzero(gated)
    plain = referees.judge([prompts[i] for i in flagged_at], [REFUSAL] * len(flagged_at)) if len(flagged_at) else {}
    kept, records, judged_candidates = [], [], []
    for i, (answers, flagged) in enumerate(zip(candidates, gated)):
        judged = {k: np.asarray(known[i][k])[:len(answers)] for k in JUDGED}
        answers = list(answers)
        if flagged:
            at = int(np.searchsorted(flagged_at, i))
            judged = {k: np.r_[judged[k], np.asarray(plain[k])[at]] for k in JUDGED}
            judged["refused"][-1] = True  # REFUSAL is one by construction, whatever a judge says of it
            answers.append(REFUSAL)
        ranking = order(judged)
        if flagged:  # the plain refusal (the last candidate) first, the samples after it
            ranking = np.r_[len(answers) - 1, ranking[ranking != len(answers) - 1]]
        kept.append(answers[ranking[0]])
        judged_candidates.append(answers)
        records.append({**{k: judged[k].astype(kind).tolist() for k, kind in JUDGED.items()},
                        "kept": int(ranking[0]), "worst": int(ranking[-1]), "gated": bool(flagged)})
    return kept, records, judged_candidates


def judge_labelled_pairs(prompts, candidates: list[list[str]], records: list[dict], path: str | Path,
                         min_reward_gap: float = 0.0, min_chosen_reward: float | None = None,
                         refuse_when_flagged: float | None = None, refuse_when_gated: bool = False,
                         benign=None) -> dict:
    """Write the best and worst candidate of each prompt as a chosen / rejected pair, in HH-RLHF's
    JSON-lines format (so `referee align dpo --data` reads it like human pairs); a count of pairs.

    A prompt gives no pair when its best and worst answers are the same text, when both get the same
    safety verdict and their rewards differ by no more than `min_reward_gap` (the judges cannot tell
    them apart, and DPO would learn noise), when an answer writes a transcript speaker tag itself, or,
    with `min_chosen_reward`, when the best answer's reward is not above it (a safe non-answer such as
    "I'm not sure." taught as chosen is how a policy learns to game the safety judge: docs/align.md).

    With `refuse_when_flagged`, a prompt where the safety judge flags at least that share of the answers
    is taken as a harmful request: there an answer the refusal judge calls a refusal (`refused` in the
    records; the least unsafe one when several) is chosen, against the most unsafe answer that is not a
    refusal, whatever the rewards — a reward judge of helpfulness ranks refusals low, and a policy that
    only learns safe deflections never learns to say no. The floor does not apply to these pairs;
    `refusal_pairs` counts them. On every other prompt a refusal is the rejected answer when there is one
    (the lowest-reward refusal, against the best answer that is not one): the policy is also shown where
    not to refuse, and `over_refusal_pairs` counts those.

    With `refuse_when_gated`, the harmful requests are those the request judge flagged (`gated` in the
    records, from `best_of_n` with a request judge): there the plain refusal `best_of_n` kept is chosen
    against the worst sampled answer under the rule.

    `benign` (one bool per prompt, or None): prompts known to be benign, such as safe requests that look
    harmful ("How do I kill a Python process?"). There a refusal is the rejected answer whatever the
    judges say — the lowest-reward sampled one, or `REFUSAL` when the policy sampled none — against the
    best answer that is not a refusal; `over_refusal_pairs` counts them. A policy taught to refuse by the
    pairs above also refuses such look-alikes (docs/align.md); these pairs show it where not to."""
    if refuse_when_flagged is not None and not 0 < refuse_when_flagged <= 1:
        raise UserError(f"refuse_when_flagged is a share of the answers in (0, 1], got {refuse_when_flagged}")
    if refuse_when_gated and refuse_when_flagged is not None:
        raise UserError("judge-labelled pairs: refuse_when_flagged and refuse_when_gated are two rules for the same "
                        "choice; give one")
    if refuse_when_gated and not any(r.get("gated") for r in records):
        raise UserError("judge-labelled pairs: refuse_when_gated, but no prompt was gated (best-of-n with a request "
                        "judge among the referees marks them)")
    if benign is not None and len(benign) != len(prompts):
        raise UserError(f"judge-labelled pairs: benign has {len(benign)} entries for {len(prompts)} prompts")
    refusal_rule = refuse_when_gated or refuse_when_flagged is not None
    lines, skipped, refusals, over_refusals = [], 0, 0, 0
    for at, (prompt, answers, r) in enumerate(zip(prompts, candidates, records)):
        best, worst = r["kept"], r["worst"]
        known_benign = benign is not None and bool(benign[at])
        refused = [i for i, x in enumerate(r["refused"]) if x] if refusal_rule or known_benign else []
        if known_benign:
            refused = [i for i in refused if answers[i] != REFUSAL]  # the gate's own refusal is never an answer here
            if not refused:  # the policy sampled no refusal: the plain one is what it must not say (unjudged:
                # it only ever is the rejected answer, so its scores are the ones that keep it last)
                answers = [*answers, REFUSAL]
                r = {**r, **{k: [*r[k], v] for k, v in (("refused", True), ("unsafe", False), ("p_unsafe", 0.0),
                                                         ("reward", -np.inf))}}
                refused = [len(answers) - 1]
        others = [i for i in range(len(answers)) if i not in refused and answers[i] != REFUSAL]
        mixed = bool(refused and others)  # a pair needs a refusal and an answer that is not one
        harmful = not known_benign and (r["gated"] if refuse_when_gated
                                        else refusal_rule and np.mean(r["unsafe"]) >= refuse_when_flagged)
        refusal = mixed and bool(harmful)
        over_refusal = mixed and not refusal
        if refusal:
            if refuse_when_gated:  # the plain refusal, against the worst sample under the rule
                best, worst = r["kept"], r["worst"]
            else:  # the least unsafe refusal, against the most unsafe answer that is not one
                best = min(refused, key=lambda i: r["p_unsafe"][i])
                worst = max(others, key=lambda i: r["p_unsafe"][i])
        elif over_refusal:
            ranking = order(r)
            best = next(int(i) for i in ranking if i in others)
            worst = min(refused, key=lambda i: r["reward"][i])
        same_safety = r["unsafe"][best] == r["unsafe"][worst]
        speaker = any(tag in answers[i] for i in (best, worst) for tag in ("\n\nHuman:", "\n\nAssistant:"))
        unhelpful = not refusal and min_chosen_reward is not None and r["reward"][best] <= min_chosen_reward
        alike = answers[best] == answers[worst] or (not refusal and same_safety
                                                    and r["reward"][best] - r["reward"][worst] <= min_reward_gap)
        if speaker or unhelpful or alike:
            skipped += 1
            continue
        if prompt.conversation.system or len(prompt.conversation.turns) != 1:
            raise UserError(f"prompt {prompt.id!r}: judge-labelled pairs are written as single-turn HH-RLHF "
                            "transcripts; this prompt has a system prompt or several turns")
        request = prompt.conversation.prompt
        refusals += refusal
        over_refusals += over_refusal
        lines.append(json.dumps({"chosen": f"\n\nHuman: {request}\n\nAssistant: {answers[best]}",
                                 "rejected": f"\n\nHuman: {request}\n\nAssistant: {answers[worst]}"}))
    if not lines:
        floor = "" if min_chosen_reward is None else f" (or no best answer's reward was above {min_chosen_reward:g})"
        raise UserError(f"judge-labelled pairs: the judges could not separate the answers of any of "
                        f"{len(prompts)} prompts{floor}; sample more answers (n) or at a higher temperature")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return {"pairs": len(lines), "skipped": skipped, "refusal_pairs": refusals, "over_refusal_pairs": over_refusals,
            "path": str(path)}
