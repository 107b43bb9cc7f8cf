"""Shared fixtures: a real mosquitto on a free loopback port, and an MQTT probe client."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import paho.mqtt.client as mqtt
import pytest
from msgspec import Meta
from paho.mqtt.enums import CallbackAPIVersion

os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
# Every daemon under test serves its page on a free port, never on 8088, where the user's own daemon
# (or anything else) may listen: daemons started as processes read the variable, in-process configs
# built with an explicit env get the default below.
os.environ["EMOMUSIC_WEB_PORT"] = "0"


def _web_on_a_free_port() -> None:
    """The page's default port 0 (any free one) in configs the tests build, so nothing needs 8088."""
    from emomusic.config import SECTIONS
    from emomusic.config.web import WebConfig

    class FreePortWebConfig(WebConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
        port: Annotated[int, Meta(ge=0, le=65535)] = 0

    SECTIONS["web"] = FreePortWebConfig


_web_on_a_free_port()


# -- no test leaves a process behind ------------------------------------------------------------------
# pytest makes itself the "subreaper" of everything the tests start: a process orphaned by a test (a
# pool worker of a killed scan, a daemon's child) is re-parented to pytest instead of init, where the
# check after each test finds it, names it and fails that test.
PR_SET_CHILD_SUBREAPER = 36
LEFTOVER_GRACE_S = 5.0


def _prctl(option: int, value: int) -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _children() -> dict[int, str]:
    """Live child processes of this one (zombies are reaped), with their command lines."""
    me, out = os.getpid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) != me:
                continue
            if fields[0] == "Z":
                os.waitpid(int(entry), os.WNOHANG)
                continue
            out[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
        except (OSError, ValueError, IndexError, ChildProcessError):
            continue
    return out


def _tolerated(pid: int) -> bool:
    """pytest's own multiprocessing resource tracker lives as long as the session."""
    from multiprocessing import resource_tracker

    return pid == getattr(resource_tracker._resource_tracker, "_pid", None)


_prctl(PR_SET_CHILD_SUBREAPER, 1)


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    before = set(_children())
    yield
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while True:
        left = {pid: cmd for pid, cmd in _children().items() if pid not in before and not _tolerated(pid)}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for pid in left:  # the next tests must not inherit them
        with contextlib.suppress(OSError):
            os.kill(pid, 9)
    if left:
        pytest.fail(f"the test left {len(left)} processes behind: " + "; ".join(f"{p}: {c}" for p, c in left.items()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    exe = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if exe is None:
        pytest.fail("mosquitto is not installed (run: make test, which installs it)")
    return exe


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def titles(c: Any) -> list[str]:
    """The titles in an MPD (or Mopidy) queue, in order."""
    return [s.get("title", "") for s in c.playlistinfo()]


def wait(pred: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``pred`` until it returns something truthy (which is returned), or fail naming ``what``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or pred}")


class Broker:
    """A mosquitto process we own: can be killed and restarted on the same port."""

    def __init__(self, workdir: Path, extra_conf: str = "", port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        # Started as root, mosquitto would switch to its own user, which cannot read pytest's 0700 tmp dirs.
        stay = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\npersistence false\n{stay}"
            + (extra_conf or "allow_anonymous true\n")
        )
        self.log = workdir / f"mosquitto-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)], stdout=logf, stderr=logf)
        wait_port(self.port)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def env(self) -> dict[str, str]:
        return {"EMOMUSIC_MQTT_HOST": "127.0.0.1", "EMOMUSIC_MQTT_PORT": str(self.port)}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    yield b
    b.kill()


@dataclass
class Msg:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Probe:
    """A subscriber that records every message, for assertions with a deadline."""

    port: int
    topics: list[str]
    messages: list[Msg] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}")
        self.client.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, qos=1) for t in self.topics]
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()

    def _on_message(self, c: Any, u: Any, m: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append(Msg(m.topic, m.payload, bool(m.retain)))
            self.cond.notify_all()

    def wait_for(self, topic: str, pred: Callable[[Msg], bool] = lambda m: True, timeout: float = 10.0,
                 after: int = 0) -> Msg:
        """First message (from index ``after``) on ``topic`` satisfying ``pred``."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages[after:]:
                    if mqtt.topic_matches_sub(topic, m.topic) and pred(m):
                        return m
                left = end - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self.messages[-10:]]
                    raise AssertionError(f"no message on {topic} within {timeout} s; last seen: {seen}")
                self.cond.wait(left)

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def probe_factory() -> Iterator[Callable[..., Probe]]:
    probes: list[Probe] = []

    def make(port: int, topics: list[str]) -> Probe:
        p = Probe(port, topics)
        probes.append(p)
        return p

    yield make
    for p in probes:
        p.close()


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Broker:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is required for the TLS test")
    d = tmp_path
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=emomusic test CA", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost", cwd=d)
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=d)
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([passwd, "-c", "-b", str(d / "passwords"), "emomusic", "s3cret pass"], check=True)
    (d / "passwords").chmod(0o644)
    conf = (f"allow_anonymous false\npassword_file {d / 'passwords'}\ncafile {d / 'ca.crt'}\n"
            f"certfile {d / 'server.crt'}\nkeyfile {d / 'server.key'}\n")
    broker = Broker(d, extra_conf=conf)
    yield broker
    broker.kill()


def daemon_config(broker: Broker | None, tmp_path: Path, device_id: str, **sections: Any) -> Any:
    """A config for a daemon under test: its own state dir, the test broker (or a port where nothing
    listens), fast heartbeats, no player; ``sections`` are merged over that, key by key."""
    from emomusic.config import parse_config

    data: dict[str, Any] = {
        "device": {"id": device_id, "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": "127.0.0.1", "port": broker.port if broker else free_port(), "heartbeat_s": 1.0,
                 "min_interval_s": 0.1},
        "player": {"enabled": False},
        "web": {"enabled": False},
    }
    for key, value in sections.items():
        data[key] = data.get(key, {}) | value
    return parse_config(data, env={})


@pytest.fixture
def supervised() -> Iterator[Callable[..., Any]]:
    """Daemons running their real supervise loop (stall checks, heartbeat) in a thread."""
    from emomusic.service.daemon import Daemon

    running: list[tuple[Daemon, threading.Thread]] = []

    def start(cfg: Any, **kwargs: Any) -> Daemon:
        d = Daemon(cfg, **kwargs)
        t = threading.Thread(target=d.run, daemon=True)
        t.start()
        running.append((d, t))
        return d

    yield start
    for d, t in running:
        d.request_stop()
        t.join(10)
