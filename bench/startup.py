"""Start-up: wall and CPU seconds of short `referee` commands, and which heavy libraries each imports,
for the code at a git ref (before) and this checkout (after), in one run on the same judge and rows.

    .venv/bin/python bench/startup.py                   # before = d34a842, 3 runs each, median
    .venv/bin/python bench/startup.py --before main --runs 5

The ref's `src/` is exported with `git archive` into a temporary folder; each command runs as
`python -m referee.cli ...` in a fresh process with PYTHONPATH at one `src/` or the other (what the
`referee` script runs), before and after taking turns. The judge is a TF-IDF pair judge trained once,
by this checkout, on the first 200 rows of ../shared/data/arena/train.csv (C fixed at 0.1); predict
and eval read the next 50. The imports columns come from one more run under `python -X importtime`,
not timed. The load average is printed: on a shared machine wall seconds move with it, CPU seconds
(user + system of the child) much less.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARENA = ROOT.parent / "shared" / "data" / "arena" / "train.csv"
HEAVY = ("torch", "transformers", "sklearn", "pandas", "matplotlib", "fastapi")


def commands(judge: Path, rows: Path, out: Path) -> dict[str, list[str]]:
    return {"referee --help": ["--help"],
            "referee train pair --bogus (argument error)": ["train", "pair", "--bogus"],
            "referee predict (TF-IDF pair judge, 50 rows)": ["predict", str(judge), "--data", str(rows), "--out",
                                                              str(out), "--no-progress"],
            "referee eval (same judge and rows)": ["eval", str(judge), "--data", str(rows), "--bootstrap", "200"],
            "referee serve --host 0.0.0.0 without a key (refused)": ["serve", str(judge), "--host", "0.0.0.0"]}


def run(src: Path, argv: list[str], out: Path, importtime: bool = False) -> subprocess.CompletedProcess:
    out.unlink(missing_ok=True)  # predict refuses nothing here, but each run should write afresh
    env = dict(os.environ, PYTHONPATH=str(src), HF_HUB_OFFLINE="1")
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", "referee.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=600)


def imported(src: Path, argv: list[str], out: Path) -> str:
    """The HEAVY modules a command imports (from `-X importtime`'s lines, one per module)."""
    names = {line.rsplit("|", 1)[-1].strip() for line in run(src, argv, out, importtime=True).stderr.splitlines()
             if line.startswith("import time:")}
    return ", ".join(m for m in HEAVY if m in names) or "none of them"


def seconds(versions: dict[str, Path], argv: list[str], out: Path, runs: int) -> list[tuple[float, float]]:
    """(median wall seconds, median CPU seconds: user + system) of `argv` under each version. The versions
    take turns, so that a change in the machine's load falls on both; CPU time moves less with the load."""
    times = {name: [] for name in versions}
    for _ in range(runs):
        for name, src in versions.items():
            start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            done = run(src, argv, out)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            times[name].append((time.perf_counter() - start,
                                after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime))
            if done.returncode not in (0, 2) or "Traceback" in done.stderr:
                sys.exit(f"{' '.join(argv)} failed under {src}:\n{done.stderr[-2000:]}")
    return [(statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for t in times.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="d34a842", help="git ref of the code to compare against")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per command and version (the median is shown)")
    args = parser.parse_args()
    if not ARENA.is_file():
        sys.exit(f"needs {ARENA}")

    with tempfile.TemporaryDirectory(prefix="referee-startup-") as tmp:
        compare(args.before, args.runs, Path(tmp))


def compare(ref: str, runs: int, work: Path) -> None:
    import pandas as pd

    before = work / "before"
    before.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
    versions = {f"before ({ref})": before / "src", "after (this checkout)": ROOT / "src"}

    arena = pd.read_csv(ARENA, nrows=250)
    arena.iloc[:200].to_csv(work / "train.csv", index=False)
    arena.iloc[200:].to_csv(work / "rows.csv", index=False)
    judge, rows, out = work / "judge", work / "rows.csv", work / "predictions.csv"
    trained = run(ROOT / "src", ["train", "pair", "--data", str(work / "train.csv"), "--C", "0.1", "--out", str(judge),
                                 "--no-progress"], out)
    if trained.returncode != 0:
        sys.exit(trained.stderr[-2000:])

    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min; "
          f"{os.cpu_count()} CPUs)\n")
    print(f"Median of {runs} runs, wall seconds (CPU seconds, user + system)\n")
    print(f"| command | {' | '.join(versions)} | {' | '.join(f'{v}: imports' for v in versions)} |")
    print("|---|" + "---:|" * len(versions) + "---|" * len(versions))
    for name, argv in commands(judge, rows, out).items():
        times = seconds(versions, argv, out, runs)
        mods = [imported(src, argv, out) for src in versions.values()]
        print(f"| `{name}` | {' | '.join(f'{w:.2f} ({c:.2f})' for w, c in times)} | {' | '.join(mods)} |", flush=True)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"imports listed: {', '.join(HEAVY)}")


if __name__ == "__main__":
    main()
