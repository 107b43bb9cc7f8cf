"""The real daemon as a subprocess, as systemd runs it: sd_notify, SIGTERM, last will, status."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Broker, Probe, free_port

HERE = Path(__file__).resolve().parent
PREFIX = "emomusic/proc"


def spawn(tmp_path: Path, port: int, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[device]\nid = "proc"\nstate_dir = "{tmp_path / "state"}"\n[mqtt]\nheartbeat_s = 2.0\n')
    env = os.environ | {"EMOMUSIC_MQTT_HOST": "127.0.0.1", "EMOMUSIC_MQTT_PORT": str(port)} | (extra_env or {})
    return subprocess.Popen(
        [sys.executable, str(HERE / "fakes.py"), "demo", "--config", str(cfg), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


def read_notifications(sock: socket.socket, until: Callable[[list[str]], bool], timeout: float) -> list[str]:
    got: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end and not until(got):
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
    return got


def test_systemd_notify_sigterm_and_clean_offline(broker: Broker, tmp_path: Path,
                                                  notify_socket: tuple[socket.socket, str],
                                                  probe_factory: Callable[..., Probe]) -> None:
    sock, path = notify_socket
    p = probe_factory(broker.port, [f"{PREFIX}/#"])
    proc = spawn(tmp_path, broker.port, extra_env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    try:
        msgs = read_notifications(sock, lambda g: any("READY=1" in m for m in g), 20)
        assert any(m.startswith("READY=1") for m in msgs)
        # ready once every stage runs, each under its own name where top -H and ps -L look
        names = {(t / "comm").read_text().strip() for t in Path(f"/proc/{proc.pid}/task").iterdir()}
        assert {"fusion", "analyzer-face", "analyzer-voice", "source-camera", "source-micropho"} <= names, names
        state = p.wait_for(f"{PREFIX}/state", lambda m: m.json()["emotion"] == "happy", timeout=20).json()
        assert state["confidence"] > 0
        msgs = read_notifications(sock, lambda g: "WATCHDOG=1" in g, 5)
        assert "WATCHDOG=1" in msgs
        n = len(p.messages)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0, out
        assert time.monotonic() - t0 < 5.0
        assert "STOPPING=1" in read_notifications(sock, lambda g: "STOPPING=1" in g, 2)
        p.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"offline", after=n)
        assert "Traceback" not in out
    finally:
        proc.kill()


def test_last_will_on_unclean_death(broker: Broker, tmp_path: Path, probe_factory: Callable[..., Probe]) -> None:
    p = probe_factory(broker.port, [f"{PREFIX}/availability"])
    proc = spawn(tmp_path, broker.port)
    try:
        p.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"online", timeout=20)
        n = len(p.messages)
        proc.kill()  # SIGKILL: no chance to say goodbye; the broker says it for us
        proc.wait(5)
        p.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"offline", after=n, timeout=10)
    finally:
        proc.kill()
    late = probe_factory(broker.port, [f"{PREFIX}/availability"])
    m = late.wait_for(f"{PREFIX}/availability")
    assert m.retain and m.payload == b"offline"


def test_status_command_prints_the_retained_state(broker: Broker, tmp_path: Path,
                                                  probe_factory: Callable[..., Probe]) -> None:
    p = probe_factory(broker.port, [f"{PREFIX}/state"])
    proc = spawn(tmp_path, broker.port)
    try:
        p.wait_for(f"{PREFIX}/state", timeout=20)
        env = os.environ | {"EMOMUSIC_MQTT_HOST": "127.0.0.1", "EMOMUSIC_MQTT_PORT": str(broker.port)}
        res = subprocess.run([sys.executable, "-m", "emomusic", "status", "--config", str(tmp_path / "config.toml")],
                             env=env, capture_output=True, text=True, timeout=20)
        assert res.returncode == 0, res.stderr
        status = json.loads(res.stdout)
        assert status["availability"] == "online"
        assert status["state"]["emotion"] == "happy"
        assert status["mode"] == "match"
        # The CLI commands the running daemon through the same topics Home Assistant uses.
        send = [sys.executable, "-m", "emomusic", "send", "--config", str(tmp_path / "config.toml")]
        bad = subprocess.run([*send, "mode", "party"], env=env, capture_output=True, text=True, timeout=20)
        assert bad.returncode == 1 and "expected one of match, regulate, fixed, off" in bad.stderr
        ok = subprocess.run([*send, "mode", "regulate"], env=env, capture_output=True, text=True, timeout=20)
        assert ok.returncode == 0, ok.stderr
        mode = probe_factory(broker.port, [f"{PREFIX}/mode"])
        mode.wait_for(f"{PREFIX}/mode", lambda m: m.payload == b"regulate", timeout=10)
        proc.terminate()
        proc.wait(10)
        # Gone: status still shows the last retained state, but says so, since when, and exits 3.
        gone = subprocess.run([sys.executable, "-m", "emomusic", "status", "--config", str(tmp_path / "config.toml")],
                              env=env, capture_output=True, text=True, timeout=20)
        assert gone.returncode == 3, gone.stderr
        assert json.loads(gone.stdout)["availability"] == "offline"
        assert "is offline since about" in gone.stderr and "s ago" in gone.stderr, gone.stderr
    finally:
        proc.terminate()
        proc.wait(10)


def test_starts_without_a_broker_and_connects_when_it_appears(tmp_path: Path,
                                                              probe_factory: Callable[..., Probe]) -> None:
    port = free_port()
    proc = spawn(tmp_path, port)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        end = time.monotonic() + 30
        while not any("is not reachable" in line for line in lines) and time.monotonic() < end:
            time.sleep(0.1)
        assert any("is not reachable: running anyway" in line for line in lines), lines
        time.sleep(1.0)
        assert proc.poll() is None, "the daemon must not exit when the broker is down"
        broker = Broker(tmp_path, port=port)
        try:
            p = probe_factory(port, [f"{PREFIX}/#"])
            p.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"online", timeout=35)
            p.wait_for(f"{PREFIX}/state", timeout=10)
        finally:
            proc.terminate()
            proc.wait(10)
            broker.kill()
        assert proc.returncode == 0
    finally:
        proc.kill()


def test_threads_are_named_where_the_system_shows_them() -> None:
    """name_threads: every thread but the main one gets its Python name, cut to the kernel's 15 bytes;
    the main thread keeps the process's name."""
    from emomusic.service.threadnames import name_threads

    main_comm = Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text()
    go = threading.Event()
    threads = [threading.Thread(target=go.wait, name=n, daemon=True) for n in ("stage-x", "a-very-long-stage-name")]
    for t in threads:
        t.start()
    try:
        assert name_threads() >= 2
        assert [Path(f"/proc/self/task/{t.native_id}/comm").read_text().strip() for t in threads] == [
            "stage-x", "a-very-long-sta"]
        assert Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text() == main_comm
    finally:
        go.set()
