"""`referee serve` from the command line: every user error is one line, the port is bound before the
server says it is serving, and Ctrl+C during start-up ends with one line. The Ctrl+C and announce
tests run the real command in a subprocess (a few seconds each)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from judges_fixtures import pair_examples

from referee.cli import main
from referee.judges import PairJudge

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return PairJudge(progress=False).fit(pair_examples()).save(tmp_path_factory.mktemp("cli") / "pair")


def one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("referee: error: ") and "Traceback" not in err, err
    return err


def test_port_out_of_range(capsys, folder):
    assert "--port 99999: expected a port number from 0 to 65535" in one_line_error(capsys, ["serve", str(folder), "--port", "99999"])


def test_busy_port_is_one_line_and_nothing_is_announced(capsys, folder):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = one_line_error(capsys, ["serve", str(folder), "--port", str(port)])
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "serving" not in capsys.readouterr().out


def test_non_utf8_key_file(capsys, folder, tmp_path):
    keys = tmp_path / "keys"
    keys.write_bytes(b"\xff\xfe" + b"k" * 20 + b"\n")
    err = one_line_error(capsys, ["serve", str(folder), "--api-key-file", str(keys)])
    assert f"{keys}: not UTF-8 text (byte 0)" in err


def serve_process(folder: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.Popen([sys.executable, "-m", "referee.cli", "serve", str(folder), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def test_ctrl_c_while_importing_is_one_line(folder):
    """Ctrl+C while the command still imports torch and the judges: exit 130, one line, no traceback."""
    proc = serve_process(folder)
    time.sleep(0.8)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "referee: interrupted\n", (proc.returncode, err)


def test_announced_port_is_listening_and_ctrl_c_during_start_up_is_one_line(folder):
    """The announcement comes once the port is listening (a client connects at once), and Ctrl+C
    right after it (while the app starts up) ends with exit 130 and one line."""
    proc = serve_process(folder)
    try:
        line = proc.stdout.readline()
        assert line.startswith("referee: serving 1 judge(s) (pair) at http://127.0.0.1:"), line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err == "referee: interrupted\n", (proc.returncode, err)
