"""The page the daemon serves (issue #20): its JSON API over plain HTTP (commands, analyze, limits,
auth), the config's refusal of an open host without a password, `emomusic analyze`, and the page
itself in a real browser (Debian's Chromium driven by Playwright; scripts/system-deps.sh installs it)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect
from skimage import data as skdata

from emomusic.config import ConfigError, parse_config
from emomusic.service.daemon import Daemon
from emomusic.sources.samples import espeak_speech

from conftest import daemon_config
from fakes import factories

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def photo() -> bytes:
    ok, jpg = cv2.imencode(".jpg", np.ascontiguousarray(skdata.astronaut()[:, :, ::-1]))
    assert ok
    return jpg.tobytes()


@pytest.fixture(scope="module")
def clip() -> bytes:
    speech = espeak_speech("What a lovely surprise, I am so glad you came to see us today.")
    assert speech is not None, "espeak-ng is required (scripts/system-deps.sh installs it)"
    buf = io.BytesIO()
    sf.write(buf, speech, 16000, format="WAV")
    return buf.getvalue()


def face_crop(side: int) -> bytes:
    """The astronaut's face cut to its detector box, as tight as a face dataset's crops, ``side`` px."""
    from emomusic.face.detector import FaceDetector

    image = np.ascontiguousarray(skdata.astronaut()[:, :, ::-1])
    x0, y0, x1, y1 = (int(v) for v in FaceDetector("full").detect(image)[0].box)
    crop = cv2.resize(image[y0:y1, x0:x1], (side, side), interpolation=cv2.INTER_AREA)
    return bytes(cv2.imencode(".png", crop)[1].tobytes())


def music_folder(path: Path) -> Path:
    from emomusic.music.demo import synth_music, write_tagged

    path.mkdir(parents=True, exist_ok=True)
    for i, mood in enumerate(("happy", "calm", "sad")):
        write_tagged(path / f"{i}.ogg", synth_music(20.0, 100, False, 0.5, seed=i), f"Song {i}", mood, rate=16000)
    return path


@pytest.fixture
def site(tmp_path: Path, supervised: Callable[..., Daemon]) -> Iterator[tuple[Daemon, str]]:
    """A daemon (a happy face, three songs, no broker) serving its page on a free port."""
    cfg = daemon_config(None, tmp_path, "web", microphone={"enabled": False}, web={"enabled": True, "port": 0},
                        player={"enabled": True, "fade_ms": 0},
                        library={"folders": [str(music_folder(tmp_path / "music"))], "min_track_s": 0})
    daemon = supervised(cfg, analyzers=factories(face="happy"), mqtt=False)
    end = time.monotonic() + 30
    while (daemon.web.port == 0 or daemon.player.current is None) and time.monotonic() < end:
        time.sleep(0.1)
    yield daemon, f"http://127.0.0.1:{daemon.web.port}"


def call(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def multipart(fields: dict[str, tuple[str, bytes] | str]) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f"--{boundary}\r\n".encode())
        if isinstance(value, tuple):
            out.write(f'Content-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\n\r\n'.encode())
            out.write(value[1])
        else:
            out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}'.encode())
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def command(base: str, topic: str, payload: object) -> tuple[int, Any]:
    return call(f"{base}/api/command", json.dumps({"topic": topic, "payload": payload}).encode(),
                {"Content-Type": "application/json"})


# -- the API over plain HTTP -----------------------------------------------------------------------------
def test_state_player_library_and_commands(site: tuple[Daemon, str]) -> None:
    daemon, base = site
    status, state = call(f"{base}/api/state")
    assert status == 200 and state["state"]["emotion"] == "happy" and "face" in state["state"]["modalities"]
    status, player = call(f"{base}/api/player")
    assert status == 200 and player["status"]["state"] == "playing" and len(player["queue"]) >= 1
    status, lib = call(f"{base}/api/library")
    assert status == 200 and {t["title"] for t in lib["tracks"]} == {"Song 0", "Song 1", "Song 2"}
    assert all(t["placement"] == "tag" for t in lib["tracks"])
    assert call(f"{base}/api/history")[1]["points"][-1]["emotion"] == "happy"
    assert command(base, "volume/set", 35) == (200, {"accepted": {"kind": "volume", "value": 35, "target": ""}})
    end = time.monotonic() + 5
    while daemon.controls.volume != 35 and time.monotonic() < end:
        time.sleep(0.05)
    assert daemon.controls.volume == 35
    assert command(base, "volume/set", 350) == (400, {"error": "volume/set: expected a number 0-100, got '350'"})
    assert "unknown topic" in command(base, "lights/set", "on")[1]["error"]
    assert call(f"{base}/api/command", b"{nope", {"Content-Type": "application/json"})[0] == 400
    assert call(f"{base}/api/nothing-here") == (404, {"error": "no such page or API: /api/nothing-here"})


def test_analyze_an_upload_and_reject_bad_ones(site: tuple[Daemon, str], photo: bytes, clip: bytes) -> None:
    _, base = site
    status, r = call(f"{base}/api/analyze", *multipart({"image": ("a.jpg", photo), "audio": ("a.wav", clip),
                                                        "mode": "regulate", "n": "2"}))
    assert status == 200, r
    assert r["modalities"]["face"]["emotion"] == "happy" and r["modalities"]["voice"]["emotion"] is not None
    assert r["emotion"] != "unknown" and r["mode"] == "regulate" and len(r["recommendations"]) == 2
    assert {"title", "artist", "valence", "arousal", "placement", "why"} <= r["recommendations"][0].keys()
    status, r = call(f"{base}/api/analyze", *multipart({"image": ("a.jpg", clip)}))
    assert status == 400 and r["error"].startswith("image: not a picture")
    status, r = call(f"{base}/api/analyze", *multipart({"audio": ("a.wav", photo)}))
    assert status == 400 and r["error"].startswith("audio: not a recording")
    status, r = call(f"{base}/api/analyze", *multipart({"mode": "match"}))
    assert status == 400 and "nothing to analyse" in r["error"]
    assert call(f"{base}/api/analyze", b"x=1", {"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    big = multipart({"image": ("big.jpg", b"\xff" * (9 * 1024 * 1024))})  # over the 8 MB default
    status, r = call(f"{base}/api/analyze", *big)
    assert status == 413 and "limit is 8 MB" in r["error"]
    status, r = call(f"{base}/api/analyze", *multipart({"image": ("a.png", cv2.imencode(".png", np.zeros(
        (64, 64, 3), np.uint8))[1].tobytes())}))
    assert status == 200 and r["emotion"] == "unknown"  # a blank image is no face, however small
    assert r["modalities"]["face"]["error"].startswith("no face found in the image")
    # a tight face crop, which the detector does not take for a face, is read as one (and says so)
    status, r = call(f"{base}/api/analyze", *multipart({"image": ("crop.png", face_crop(48))}))
    assert status == 200 and r["modalities"]["face"]["emotion"] == "happy", r
    assert "read as one face crop" in r["modalities"]["face"]["read_as"]


def test_every_route_asks_for_the_password_when_one_is_set(tmp_path: Path, supervised: Callable[..., Daemon]) -> None:
    cfg = daemon_config(None, tmp_path, "web", camera={"enabled": False}, microphone={"enabled": False})
    cfg = parse_config({**cfg.model_dump(), "web": {"enabled": True, "port": 0, "host": "0.0.0.0"}},
                       env={"EMOMUSIC_WEB_PASSWORD": "s3cret"})
    daemon = supervised(cfg, analyzers={}, mqtt=False)
    end = time.monotonic() + 10
    while daemon.web.port == 0 and time.monotonic() < end:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{daemon.web.port}"
    for path in ("/", "/api/state", "/static/app.js"):
        status, body = call(base + path) if path.startswith("/api") else (_status(base + path), None)
        assert status == 401, path
    good = {"Authorization": "Basic " + base64.b64encode(b"me:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"me:guess").decode()}
    assert call(f"{base}/api/state", headers=bad)[0] == 401
    assert call(f"{base}/api/state", headers=good)[0] == 200


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_an_open_host_without_a_password_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"web": {"host": "0.0.0.0"}}, "config.toml", env={})
    assert str(e.value).count("\n") == 0 and "web.host" in str(e.value) and "EMOMUSIC_WEB_PASSWORD" in str(e.value)
    with pytest.raises(ConfigError, match=r"web.host \(from EMOMUSIC_WEB_HOST\)"):
        parse_config({}, "config.toml", env={"EMOMUSIC_WEB_HOST": "192.168.1.20"})
    assert parse_config({"web": {"host": "0.0.0.0"}}, env={"EMOMUSIC_WEB_PASSWORD": "x"}).web_password == "x"
    assert parse_config({"web": {"host": "0.0.0.0", "enabled": False}}, env={}).web.enabled is False
    assert parse_config({"web": {"host": "::1"}}, env={}).web.host == "::1"


def test_a_port_already_taken_is_one_error_and_the_daemon_runs_on(
        tmp_path: Path, supervised: Callable[..., Daemon], caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = daemon_config(None, tmp_path, "web", microphone={"enabled": False}, web={"enabled": True, "port": port})
        daemon = supervised(cfg, analyzers=factories(face="happy"), mqtt=False)
        end = time.monotonic() + 10
        while daemon.web.error is None and time.monotonic() < end:
            time.sleep(0.05)
        assert daemon.web.error is not None and f"127.0.0.1:{port}" in daemon.web.error
        while (daemon.last_state is None or daemon.last_state.emotion != "happy") and time.monotonic() < end:
            time.sleep(0.05)
        assert daemon.last_state is not None and daemon.last_state.emotion == "happy"


def test_emomusic_analyze_prints_a_summary_and_a_json_last_line(tmp_path: Path, photo: bytes, clip: bytes) -> None:
    (tmp_path / "a.jpg").write_bytes(photo)
    (tmp_path / "a.wav").write_bytes(clip)
    conf = tmp_path / "config.toml"
    music = music_folder(tmp_path / "m")
    conf.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[library]\nfolders = ["{music}"]\nmin_track_s = 0\n')
    out = subprocess.run([sys.executable, "-m", "emomusic", "analyze", "--config", str(conf), "--image",
                          str(tmp_path / "a.jpg"), "--audio", str(tmp_path / "a.wav"), "-n", "2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert {"emotion", "confidence", "valence", "arousal", "modalities", "recommendations"} <= result.keys()
    assert result["modalities"]["face"]["emotion"] == "happy" and len(result["recommendations"]) == 2
    assert any(line.startswith("fused") for line in lines[:-1])
    bad = subprocess.run([sys.executable, "-m", "emomusic", "analyze", "--config", str(conf), "--image",
                          str(tmp_path / "a.wav")], capture_output=True, text=True, timeout=120)
    expected = "not a picture that can be read (expected JPEG, PNG, BMP or WebP)"
    assert bad.returncode == 1 and bad.stderr.strip() == f"emomusic analyze: --image {tmp_path / 'a.wav'}: {expected}"


def test_emomusic_analyze_reads_a_tight_crop_and_fails_clearly_otherwise(tmp_path: Path, clip: bytes) -> None:
    """A 48 px face crop, or one upscaled to 256 px, is read as one face (the output says so); a bigger
    picture with no face, an empty file or an unreadable clip exit non-zero naming what was wrong."""
    conf = tmp_path / "config.toml"
    conf.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[library]\nfolders = ["{music_folder(tmp_path / "m")}"]\nmin_track_s = 0\n')

    def analyze(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "emomusic", "analyze", "--config", str(conf), *args],
                              capture_output=True, text=True, timeout=120)

    for side in (48, 256):
        (tmp_path / f"crop{side}.png").write_bytes(face_crop(side))
        out = analyze("--image", str(tmp_path / f"crop{side}.png"))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.splitlines()[-1])["modalities"]["face"]["emotion"] == "happy"
        assert "face   happy" in out.stdout and "read as one face crop" in out.stdout
    cv2.imwrite(str(tmp_path / "cat.jpg"), np.ascontiguousarray(skdata.chelsea()[:, :, ::-1]))
    cat = analyze("--image", str(tmp_path / "cat.jpg"))
    assert cat.returncode == 1 and "no face found in the image (a face should be turned" in cat.stderr
    (tmp_path / "empty.jpg").write_bytes(b"")
    empty = analyze("--image", str(tmp_path / "empty.jpg"))
    assert empty.returncode == 1 and empty.stderr.strip() == \
        f"emomusic analyze: --image {tmp_path / 'empty.jpg'}: the file is empty (expected JPEG, PNG, BMP or WebP)"
    (tmp_path / "noise.wav").write_bytes(b"RIFF" + bytes(100))
    noise = analyze("--audio", str(tmp_path / "noise.wav"))
    assert noise.returncode == 1 and noise.stderr.startswith(f"emomusic analyze: --audio {tmp_path / 'noise.wav'}: "
                                                             "not a recording")
    assert "0x" not in noise.stderr and "BytesIO" not in noise.stderr, noise.stderr


# -- the page in a real browser ----------------------------------------------------------------------------
@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), f"{CHROMIUM} is required (scripts/system-deps.sh dev installs Debian's chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_the_page_shows_the_live_state_and_its_controls_reach_the_daemon(
        site: tuple[Daemon, str], browser: Any, photo: bytes, tmp_path: Path) -> None:
    from emomusic.commands import Command

    daemon, base = site
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(base)
    expect(page.locator("#emotion")).to_have_text("happy", timeout=15000)
    daemon.submit_command(Command("feedback", "sad"))  # the state changes: the page follows, live
    expect(page.locator("#emotion")).to_have_text("sad", timeout=10000)
    assert page.get_attribute("#me", "visibility") == "visible"

    page.click("nav button[data-tab=music]")
    expect(page.locator("#playing")).to_have_text(re.compile("^Song"), timeout=10000)
    page.select_option("#mode", "regulate")
    page.click("#dislike")
    end = time.monotonic() + 10
    while (daemon.controls.mode != "regulate" or not daemon.profile.banned()) and time.monotonic() < end:
        time.sleep(0.1)
    assert daemon.controls.mode == "regulate" and len(daemon.profile.banned()) == 1

    page.click("nav button[data-tab=library]")
    page.wait_for_selector("#dots circle", timeout=10000)
    assert page.locator("#dots circle").count() == 3
    page.fill("#search", "Song 1")
    assert page.locator("#dots circle:not(.hidden)").count() == 1

    (tmp_path / "face.jpg").write_bytes(photo)
    page.click("nav button[data-tab=analyze]")
    page.set_input_files("input[name=image]", str(tmp_path / "face.jpg"))
    page.click("#analyze-go")
    page.wait_for_selector("#recommendations", timeout=30000)
    assert page.text_content("#result-emotion") == "happy"
    assert page.locator("#recommendations tr").count() >= 2  # a header and songs
    page.screenshot(path=str(tmp_path / "analyze.png"))


def test_the_page_is_readable_and_says_when_the_daemon_is_gone(site: tuple[Daemon, str], browser: Any) -> None:
    """A favicon, no empty card before an upload, a timeline with its time axis and scale, circumplex
    labels that do not overlap; once the daemon stops, the page says since when, greys the last known
    values and disables the controls, and the open page does not hold the stop up."""
    daemon, base = site
    assert _status(f"{base}/favicon.ico") == 200
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(base)
    expect(page.locator("#emotion")).to_have_text("happy", timeout=15000)
    assert page.get_attribute("link[rel=icon]", "href") == "/static/favicon.svg"
    assert page.locator("#result").is_hidden()
    ticks = page.locator("#tl-grid text").all_text_contents()
    assert {"now", "−10 min", "+1", "0", "-1"} <= set(ticks), ticks
    boxes = page.evaluate("""[...document.querySelectorAll('#labels text')].map((t) => {
        const b = t.getBBox(); return [t.textContent, b.x, b.y, b.x + b.width, b.y + b.height]; })""")
    for i, (a, *ra) in enumerate(boxes):
        for b, *rb in boxes[i + 1:]:
            apart = ra[2] <= rb[0] or rb[2] <= ra[0] or ra[3] <= rb[1] or rb[3] <= ra[1]
            assert apart, f"the labels {a} and {b} overlap"
    page.click("nav button[data-tab=music]")
    assert page.locator("#skip").is_enabled()
    thread = daemon.web._thread
    daemon.request_stop()
    thread.join(5)  # the page's event stream used to hold the web stage for 5 s and more
    assert not thread.is_alive()
    page.wait_for_selector("#offline:not([hidden])", timeout=10000)
    assert page.text_content("#offline").startswith("daemon offline since")
    assert page.locator("#skip").is_disabled() and page.locator("#mode").is_disabled()
    assert page.evaluate("getComputedStyle(document.querySelector('main .card')).opacity") == "0.45"


def test_recording_in_the_browser_is_sent_as_a_wav_and_analysed(site: tuple[Daemon, str]) -> None:
    """Chromium's fake microphone (a beep) stands in for a person: the page records 5 s, encodes a
    WAV and the daemon analyses it; a beep has no speech, which the result says."""
    from playwright.sync_api import sync_playwright

    _, base = site
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is required (scripts/system-deps.sh dev installs Debian's chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--use-fake-device-for-media-stream",
                                                             "--use-fake-ui-for-media-stream"])
        try:
            page = b.new_context(permissions=["microphone"]).new_page()
            page.goto(base)
            page.click("nav button[data-tab=analyze]")
            page.click("#record")
            expect(page.locator("#recorded")).to_have_text(re.compile("^recorded"), timeout=20000)
            assert "used instead of a file" in page.text_content("#recorded")
            page.click("#analyze-go")
            page.wait_for_selector("#result-emotion", timeout=30000)
            assert page.text_content("#result-emotion") == "unknown"
            assert "voice: no speech found in the clip" in page.text_content("#result")
        finally:
            b.close()
