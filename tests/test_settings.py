from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import alkana_logging
from alkana_logging import ConfigurationError, Settings
from alkana_logging.settings import DEFAULT_REDACT_KEYS, load_settings


def test_defaults_match_the_design() -> None:
    settings = load_settings(environ={})
    assert settings.level == "INFO"
    assert settings.log_file == Path("logs/app.log")
    assert settings.stdout is True
    assert settings.format == "json"
    assert settings.rotation == "size"
    assert settings.max_bytes == 10 * 1024 * 1024
    assert settings.backup_count == 5
    assert settings.redact_keys == DEFAULT_REDACT_KEYS


def test_environment_overrides_defaults() -> None:
    settings = load_settings(
        environ={
            "LOG_LEVEL": "debug",
            "LOG_FILE": "/tmp/x/y.log",
            "LOG_STDOUT": "false",
            "LOG_FORMAT": "console",
            "LOG_ROTATION": "external",
            "LOG_MAX_BYTES": "2048",
            "LOG_BACKUP_COUNT": "7",
            "APP_NAME": "api",
            "APP_ENV": "prod",
            "LOG_REDACT_KEYS": "ssn, Card-Number",
        }
    )
    assert (settings.level, settings.log_file, settings.stdout) == (
        "DEBUG",
        Path("/tmp/x/y.log"),
        False,
    )
    assert (settings.format, settings.rotation) == ("console", "external")
    assert (settings.max_bytes, settings.backup_count) == (2048, 7)
    assert (settings.app_name, settings.app_env) == ("api", "prod")
    assert {"ssn", "card_number"} <= settings.redact_keys
    assert settings.redact_keys >= DEFAULT_REDACT_KEYS


def test_keyword_arguments_override_the_environment() -> None:
    settings = load_settings(
        {"level": "ERROR", "app_name": "kw"}, environ={"LOG_LEVEL": "DEBUG", "APP_NAME": "env"}
    )
    assert (settings.level, settings.app_name) == ("ERROR", "kw")


def test_none_means_not_given() -> None:
    settings = load_settings({"level": None}, environ={"LOG_LEVEL": "WARNING"})
    assert settings.level == "WARNING"


def test_empty_log_file_means_no_file() -> None:
    assert load_settings(environ={"LOG_FILE": ""}).log_file is None


def test_rotation_none_writes_stdout_only() -> None:
    settings = load_settings(environ={"LOG_ROTATION": "none", "LOG_FILE": "x.log"})
    assert settings.log_file is None
    assert settings.stdout is True


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.level = "DEBUG"  # type: ignore[misc]


def test_loki_password_is_not_in_the_repr() -> None:
    settings = load_settings({"loki_password": "hunter2", "loki_token": "tok"}, environ={})
    assert "hunter2" not in repr(settings)
    assert "tok'" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "match"),
    [
        (
            {"LOG_LEVEL": "LOUD"},
            r"LOG_LEVEL \(environment\): got 'LOUD'; expected one of DEBUG, INFO",
        ),
        ({"LOG_ROTATION": "daily"}, r"LOG_ROTATION .*'daily'.*size, external, none"),
        ({"LOG_MAX_BYTES": "-1"}, r"LOG_MAX_BYTES .*'-1'.*integer >= 0"),
        ({"LOG_MAX_BYTES": "10MB"}, r"LOG_MAX_BYTES .*'10MB'.*integer"),
        ({"LOG_BACKUP_COUNT": "many"}, r"LOG_BACKUP_COUNT .*'many'"),
        ({"LOG_STDOUT": "maybe"}, r"LOG_STDOUT .*'maybe'.*true or false"),
        ({"LOG_FORMAT": "xml"}, r"LOG_FORMAT .*'xml'.*json, console"),
        ({"APP_NAME": "  "}, r"APP_NAME .*empty"),
        ({"LOG_STDOUT": "false", "LOG_FILE": ""}, r"nothing would be written"),
    ],
)
def test_bad_environment_values_are_clear_errors(environ: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        load_settings(environ=environ)


def test_configuration_error_is_a_value_error() -> None:
    assert issubclass(ConfigurationError, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"level": "LOUD"}, r"setup\(level=\.\.\.\): got 'LOUD'"),
        ({"max_bytes": -1}, r"setup\(max_bytes=\.\.\.\): got -1"),
        ({"rotation": "hourly"}, r"setup\(rotation=\.\.\.\): got 'hourly'"),
        ({"stdout": "perhaps"}, r"setup\(stdout=\.\.\.\)"),
    ],
)
def test_bad_keyword_arguments_are_clear_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        alkana_logging.setup(**kwargs)
    assert not alkana_logging.is_configured()


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"app_name": 3}, "JsonFormatter(app_name=...): got 3; expected a string"),
        ({"redact_keys": 5}, "JsonFormatter(redact_keys=...): got 5"),
        ({"loki_batch_wait": "soon"}, "JsonFormatter(loki_batch_wait=...): got 'soon'"),
        ({"app_nmae": "x"}, "JsonFormatter() got unexpected keyword argument(s) app_nmae"),
    ],
)
def test_errors_name_the_caller_that_took_the_keyword_arguments(
    overrides: dict[str, object], said: str
) -> None:
    with pytest.raises((ConfigurationError, TypeError)) as raised:
        load_settings(overrides, {}, caller="JsonFormatter")
    assert said in str(raised.value)
    assert "setup(" not in str(raised.value)
    # The environment's values are named by their variable, whoever reads them.
    with pytest.raises(ConfigurationError, match=r"^APP_ENV \(environment\): got an empty"):
        load_settings({}, {"APP_ENV": " "}, caller="JsonFormatter")


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="levle"):
        alkana_logging.setup(levle="DEBUG")


def test_unwritable_log_file_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(ConfigurationError, match=r"LOG_FILE=.*not-a-dir/app.log.*cannot be opened"):
        alkana_logging.setup(log_file=str(blocker / "app.log"))
    assert not alkana_logging.is_configured()


def test_setup_returns_the_effective_settings(tmp_path: Path) -> None:
    settings = alkana_logging.setup(log_file=str(tmp_path / "a.log"), stdout=False, level="debug")
    assert isinstance(settings, Settings)
    assert settings.level == "DEBUG"
    assert settings.log_file == tmp_path / "a.log"


def test_level_accepts_stdlib_numbers_and_warn() -> None:
    assert load_settings({"level": 30}, environ={}).level == "WARNING"
    assert load_settings(environ={"LOG_LEVEL": "warn"}).level == "WARNING"
