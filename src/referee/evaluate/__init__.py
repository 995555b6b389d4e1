"""Evaluation: pure metric functions (`metrics`), temperature scaling (`calibration`), evaluators
that score a judge or outside predictions with bootstrap intervals (`evaluator`), and the HTML
report with its plots (`report`, `plots`)."""

from referee.evaluate.evaluator import Evaluation, evaluate
from referee.evaluate.predictions import Predictions, read_predictions


def write_report(out_dir, results, title: str = "referee evaluation report"):
    """`referee.evaluate.report.write_report`, imported on first use: judges import this package
    (for temperature scaling) and should not pay for matplotlib."""
    from referee.evaluate.report import write_report as write

    return write(out_dir, results, title)


__all__ = ["Evaluation", "evaluate", "Predictions", "read_predictions", "write_report"]
