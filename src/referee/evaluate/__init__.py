"""Evaluation: pure metric functions (`metrics`), temperature scaling (`calibration`), evaluators
that score a judge or outside predictions with bootstrap intervals (`evaluator`), and the HTML
report with its plots (`report`, `plots`)."""

from referee.evaluate.evaluator import Evaluation, evaluate
from referee.evaluate.predictions import Predictions, read_predictions
from referee.evaluate.report import write_report

__all__ = ["Evaluation", "evaluate", "Predictions", "read_predictions", "write_report"]
