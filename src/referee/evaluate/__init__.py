"""Evaluation: pure metric functions (`metrics`), temperature scaling (`calibration`), the outputs of
a judge or of outside predictions (`outputs`), evaluators that score them with bootstrap intervals
(`evaluators`), and the HTML report with its plots (`report`, `plots`).

The judges call `metrics` and `calibration`, so this package imports nothing on its own: the names
below load on first use (and matplotlib only with the report)."""

from __future__ import annotations

import importlib

_NAMES = {"Evaluation": "evaluators", "evaluate": "evaluators", "Predictions": "outputs",
          "read_predictions": "outputs", "write_report": "report"}


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f"referee.evaluate.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'referee.evaluate' has no attribute {name!r}")


__all__ = list(_NAMES)
