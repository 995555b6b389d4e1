"""`referee serve` from the command line: every user error is one line, the port is bound before the
server says it is serving, and Ctrl+C during start-up ends with one line. The Ctrl+C and announce
tests run the real command in a subprocess (a few seconds each)."""

from __future__ import annotations

import asyncio
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
    """The command as a terminal starts it. A test run started in the background by a non-interactive
    shell (as CI may be) ignores SIGINT, and a child inherits that across exec: Python then installs
    no Ctrl+C handler, the first SIGINT is lost and only uvicorn's own handler hears a later one. So the
    child starts with Python's handler in place, as from a terminal."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # a caught signal resets to default at exec
    try:
        return subprocess.Popen([sys.executable, "-m", "referee.cli", "serve", str(folder), "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    finally:
        signal.signal(signal.SIGINT, inherited)


def interrupt(proc: subprocess.Popen, tries: int = 4) -> tuple[str, str]:
    """Ctrl+C, again every 20 s while the process runs (as a person would), in case a first SIGINT
    lands where a library swallows it. Not sooner: a process still shutting down after the first (3 s
    was once too short in fresh-check) would end by the second signal and the test would blame the command."""
    for _ in range(tries):
        proc.send_signal(signal.SIGINT)
        try:
            return proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    return proc.communicate()


def test_ctrl_c_while_importing_is_one_line(folder):
    """Ctrl+C while the command still imports torch and the judges: exit 130, one line, no traceback."""
    proc = serve_process(folder)
    time.sleep(0.8)
    out, err = interrupt(proc)
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
        out, err = interrupt(proc)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err == "referee: interrupted\n", (proc.returncode, err)


# --- issue 15 item 10 beyond `serve`: each a one-line error -------------------------------------------

@pytest.fixture
def arena_csv(tmp_path):
    path = tmp_path / "small.csv"
    rows = ["id,prompt,response_a,response_b,winner_model_a,winner_model_b,winner_tie"]
    rows += [f'{i},"[""q {i}""]","[""a""]","[""b""]",1,0,0' for i in range(4)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_eval_bootstrap_zero_and_report_on_a_file(capsys, folder, arena_csv, tmp_path):
    err = one_line_error(capsys, ["eval", str(folder), "--data", str(arena_csv), "--bootstrap", "0"])
    assert "--bootstrap 0: expected at least 1 resample" in err
    (tmp_path / "notes.txt").write_text("keep me")
    err = one_line_error(capsys, ["eval", str(folder), "--data", str(arena_csv), "--report", str(tmp_path / "notes.txt")])
    assert "is a file, not a folder" in err and (tmp_path / "notes.txt").read_text() == "keep me"


def test_binary_predictions_file(capsys, arena_csv, tmp_path):
    binary = tmp_path / "preds.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "preds.csv: not UTF-8 text (byte 128)" in one_line_error(capsys, ["eval", "--data", str(arena_csv),
                                                                             "--predictions", str(binary)])


def test_deeply_nested_json_data(capsys, folder, tmp_path):
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    argv = ["predict", str(folder), "--data", str(deep), "--format", "jsonl", "--out", str(tmp_path / "o.csv")]
    assert "nested too deeply" in one_line_error(capsys, argv)
    argv = ["data", "inspect", str(deep), "--format", "jsonl", "--on-error", "skip"]
    assert "nested too deeply" in one_line_error(capsys, argv)


def test_a_gz_file_that_is_not_gzip(capsys, folder, tmp_path):
    fake = tmp_path / "data.csv.gz"
    fake.write_text("id,prompt\n1,2\n")
    err = one_line_error(capsys, ["predict", str(folder), "--data", str(fake), "--out", str(tmp_path / "o.csv")])
    assert "named .gz but not gzip-compressed" in err



def test_connections_to_the_bound_socket_send_without_nagle():
    """asyncio turns Nagle off only on connections of a socket that says it is TCP: without that, each
    response's body waited for the client's delayed ACK of its headers (44 ms on every request)."""
    from referee.serve.server import bind

    sock = bind("127.0.0.1", 0)

    async def nodelay_of_an_accepted_connection() -> int:
        seen = asyncio.get_running_loop().create_future()

        def accepted(reader, writer):
            seen.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        async with await asyncio.start_server(accepted, sock=sock):
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            value = await asyncio.wait_for(seen, 10)
            writer.close()
            return value

    assert asyncio.run(nodelay_of_an_accepted_connection()) == 1
