"""`[metrics]` and `[logging]`: strict like every table, with the defaults the README gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import MetricsSettings, Settings, load_settings
from gateway.config_schema import LogFormat
from gateway.errors import ConfigError

ENV = {"GATEWAY_KEYS": "k1:" + "A" * 43, "GATEWAY_ORIGIN": "http://127.0.0.1:9/"}


def load(tmp_path: Path, text: str, **env: str) -> Settings:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return load_settings(path, {**ENV, **env})


def test_defaults_are_metrics_on_the_main_port_and_text_logs(tmp_path: Path) -> None:
    settings = load_settings(None, ENV)
    assert settings.metrics == MetricsSettings(enabled=True, port=0, host="127.0.0.1")
    assert settings.metrics.on_main_port and settings.log_format is LogFormat.TEXT


def test_the_tables_are_read(tmp_path: Path) -> None:
    settings = load(tmp_path, '[metrics]\nport = 9108\nhost = "10.0.0.5"\n[logging]\nformat = "json"\n')
    assert settings.metrics == MetricsSettings(port=9108, host="10.0.0.5")
    assert not settings.metrics.on_main_port and settings.log_format is LogFormat.JSON
    off = load(tmp_path, "[metrics]\nenabled = false\n", GATEWAY_LOG_FORMAT="json")
    assert not off.metrics.on_main_port and off.log_format is LogFormat.JSON


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[metrics]\nprot = 9108\n", "unknown key 'prot' in [metrics]"),
        ("[metrics]\nport = 70000\n", "metrics.port must be 0"),
        ('[metrics]\nport = "9108"\n', "metrics.port must be a port number"),
        ('[metrics]\nenabled = "no"\n', "metrics.enabled must be true or false"),
        ("[metrics]\nenabled = false\nport = 9108\n", "metrics.enabled = false"),
        ('[logging]\nformat = "xml"\n', "logging.format must be one of text, json"),
        ('[logging]\nlevel = "debug"\n', "unknown key 'level' in [logging]"),
    ],
)
def test_mistakes_stop_start_up(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(tmp_path, text)


def test_the_log_format_variable_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_LOG_FORMAT must be one of text, json"):
        load(tmp_path, "", GATEWAY_LOG_FORMAT="yaml")
