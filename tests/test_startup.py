"""Start-up (issue 13 item 8): a TF-IDF judge loads and predicts without importing torch or any other
library its backend does not use (torch alone took 1-2 s of every command). Each command runs in a
fresh interpreter, which then lists the heavy modules it imported. Timings are in bench/startup.py;
`referee --help` and argument errors are checked in test_newcomer.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from judges_fixtures import pair_examples

from referee.judges import PairJudge

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sentence_transformers", "accelerate", "matplotlib", "fastapi", "ray")


def imported_heavy(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; the HEAVY modules it imported."""
    probe = code + f"\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tfidf_judge(tmp_path_factory):
    return PairJudge(progress=False).fit(pair_examples()).save(tmp_path_factory.mktemp("startup") / "pair")


def test_tfidf_judge_loads_and_predicts_without_torch(tfidf_judge):
    code = ("from referee.judges import load_judge\n"
            f"judge = load_judge({str(tfidf_judge)!r})\n"
            "assert judge.predict_proba([('How do I boil an egg?', 'Seven minutes.', 'No idea.')]).shape == (1, 3)")
    assert imported_heavy(code) == []


def test_predict_and_eval_commands_import_no_heavy_library(tfidf_judge, tmp_path):
    data, out = ROOT / "examples" / "pairs.jsonl", tmp_path / "p.csv"
    code = ("from referee.cli import main\n"
            f"assert main(['predict', {str(tfidf_judge)!r}, '--data', {str(data)!r}, '--out', {str(out)!r}, "
            "'--no-progress']) == 0\n"
            f"assert main(['eval', {str(tfidf_judge)!r}, '--data', {str(data)!r}, '--bootstrap', '10']) == 0")
    assert imported_heavy(code) == []  # eval draws with matplotlib only for --report
    assert out.is_file()
