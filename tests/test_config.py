"""Config validation: every error names the key path and what was expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emomusic.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def error_of(data: dict, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(data, "test.toml", env or {})
    return str(e.value)


def test_shipped_config_is_valid_and_equals_the_defaults() -> None:
    shipped = load_config(ROOT / "config.toml", env={}).model_dump()
    defaults = parse_config({}, env={}).model_dump()
    # the tests serve the page on a free port (conftest.py); the shipped file says the real default
    assert shipped["web"].pop("port") == 8088 and defaults["web"].pop("port") == 0
    assert shipped == defaults


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"bogus": 1}, "test.toml: bogus: unknown section (expected one of: device, camera, microphone"),
        ({"libary": {}}, "test.toml: libary: unknown section (did you mean 'library'?)"),
        ({"mqtt": {"hots": "x"}}, "test.toml: mqtt.hots: unknown key (did you mean 'host'?)"),
        ({"mqtt": {"tls": {"enable": True}}}, "mqtt.tls.enable: unknown key (did you mean 'enabled'?)"),
        ({"camera": {"zzz": 1}}, "camera.zzz: unknown key (expected one of: enabled, source, loop"),
        ({"fusion": {"tau_s": {"fase": 1}}}, "fusion.tau_s.fase: unknown modality (did you mean 'face'?)"),
        ({"fusion": {"reliability": {"xyz": 0.5}}}, "fusion.reliability.xyz: unknown modality (expected one of: face"),
        ({"mqtt": {"port": "abc"}}, "mqtt.port: Input should be a valid integer"),
        ({"mqtt": {"port": 0}}, "mqtt.port: Input should be greater than or equal to 1"),
        ({"mqtt": {"port": 70000}}, "mqtt.port: Input should be less than or equal to 65535"),
        ({"mqtt": {"topic_prefix": "a/#"}}, "mqtt.topic_prefix: expected a topic without wildcards"),
        ({"mqtt": {"external_emotion_topics": [""]}}, "mqtt.external_emotion_topics: invalid topic"),
        ({"mqtt": {"tls": {"cert_file": "c.pem"}}}, "mqtt.tls: cert_file and key_file go together"),
        ({"mqtt": {"max_payload_bytes": 1}}, "mqtt.max_payload_bytes"),
        ({"camera": {"analysis_fps": 0}}, "camera.analysis_fps: Input should be greater than 0"),
        ({"camera": {"enabled": "maybe"}}, "camera.enabled: Input should be a valid boolean"),
        ({"microphone": {"block_ms": 100}}, "microphone.block_ms: expected a multiple of 30"),
        ({"fusion": {"tau_s": -1}}, "fusion.tau_s: tau of 'face' must be a finite number > 0, got -1.0"),
        ({"fusion": {"margin": 2}}, "fusion.margin: Input should be less than or equal to 1"),
        ({"fusion": {"reliability": {"face": 1.5}}}, "fusion.reliability: reliability of 'face' must be in [0, 1]"),
        ({"fusion": {"circumplex": {"happy": [0.8]}}}, "fusion.circumplex.happy"),
        ({"player": {"mode": "loud"}}, "player.mode: Input should be 'match', 'regulate', 'fixed' or 'off'"),
        ({"player": {"volume": 101}}, "player.volume"),
        ({"device": {"id": "bad id!"}}, "device.id: expected 1-64 characters"),
        ({"logging": {"level": "CHATTY"}}, "logging.level"),
        ({"mqtt": {"password": "hunter2"}}, "mqtt.password: not allowed inline"),
    ],
)
def test_each_invalid_value_names_its_key(data: dict, expected: str) -> None:
    assert expected in error_of(data)


def test_circumplex_rejects_unknown_labels_and_out_of_range() -> None:
    full = {k: [0.0, 0.0] for k in ("neutral", "calm", "happy", "surprised", "sad", "angry", "fearful",
                                     "disgust", "contempt")}
    assert "unknown labels ['joyful']" in error_of({"fusion": {"circumplex": full | {"joyful": [0, 0]}}})
    assert "'happy' must lie in [-1, 1]" in error_of({"fusion": {"circumplex": full | {"happy": [2, 0]}}})


def test_several_errors_are_all_reported_one_per_line() -> None:
    msg = error_of({"mqtt": {"port": "x"}, "camera": {"width": 1}})
    assert len(msg.splitlines()) == 2


def test_environment_overrides_and_names_the_variable_on_error() -> None:
    cfg = parse_config({}, env={"EMOMUSIC_MQTT_HOST": "broker.lan", "EMOMUSIC_MQTT_PORT": "8883",
                                "EMOMUSIC_MQTT_USERNAME": "pi", "EMOMUSIC_MQTT_PASSWORD": "s3cret"})
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.username, cfg.mqtt_password) == ("broker.lan", 8883, "pi", "s3cret")
    assert "mqtt.port (from EMOMUSIC_MQTT_PORT): Input should be a valid integer" in error_of(
        {}, env={"EMOMUSIC_MQTT_PORT": "eighty"}
    )


def test_password_file_is_read_and_an_unreadable_one_is_named(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert parse_config({"mqtt": {"password_file": str(secret)}}, env={}).mqtt_password == "from-file"
    msg = error_of({"mqtt": {"password_file": str(tmp_path)}})  # a directory cannot be read as a file
    assert msg.startswith(f"mqtt.password_file: cannot read {tmp_path}")


def test_file_level_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\nport = 1")
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML"):
        load_config(bad)
    bad.write_bytes(b"[device]\nname = \"\xff\"\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)

    def deny(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(ConfigError, match=r"not readable by this user \(uid \d+\)"):
        load_config(bad)


def test_derived_names() -> None:
    cfg = parse_config({"device": {"id": "living-room"}}, env={})
    assert cfg.topic_prefix == "emomusic/living-room"
    assert parse_config({"mqtt": {"topic_prefix": "home/music"}}, env={}).topic_prefix == "home/music"
    assert parse_config({}, env={"EMOMUSIC_STATE_DIR": "/tmp/x"}).state_dir == Path("/tmp/x")


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    good = subprocess.run([sys.executable, "-m", "emomusic", "check-config", str(ROOT / "config.toml")],
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "OK" in good.stdout
    bad = tmp_path / "c.toml"
    bad.write_text("[mqtt]\nport = 'x'\n")
    res = subprocess.run([sys.executable, "-m", "emomusic", "check-config", str(bad)], capture_output=True, text=True)
    assert res.returncode == 1
    assert "mqtt.port: Input should be a valid integer" in res.stderr


def test_a_partial_tau_table_keeps_the_other_modalities_defaults() -> None:
    """`[fusion.tau_s] face = 2` changes the face only: the voice keeps its 3 s (it used to fall to the
    slowest listed value, the face's), while one number still sets every modality."""
    from emomusic.config import parse_config

    cfg = parse_config({"fusion": {"tau_s": {"face": 2.0}}}, env={})
    default = parse_config({}, env={}).fusion
    assert cfg.fusion.tau("face") == 2.0 and cfg.fusion.tau("voice") == default.tau("voice") == 3.0
    assert parse_config({"fusion": {"tau_s": 4}}, env={}).fusion.tau("voice") == 4.0
    assert default.tau("face") == 0.5 and default.hold_s == 0.25
