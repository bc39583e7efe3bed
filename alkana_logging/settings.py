"""Settings: keyword arguments override the environment, the environment overrides defaults."""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypedDict

from alkana_logging import fields as F
from alkana_logging.exceptions import ConfigurationError
from alkana_logging.redaction import DEFAULT_REDACT_KEYS, mask_url, normalise_key

Rotation = Literal["size", "external", "none"]
Format = Literal["json", "console"]
OnFileError = Literal["raise", "stdout"]
Oversize = Literal["truncate", "drop"]
RecordDetails = Literal["auto", "on", "off"]

#: The levels as ``LOG_LEVEL`` names them (the contract's, in upper case).
LEVEL_NAMES = tuple(level.upper() for level in F.LEVELS)
ROTATIONS: tuple[Rotation, ...] = ("size", "external", "none")
FORMATS: tuple[Format, ...] = ("json", "console")
ON_FILE_ERRORS: tuple[OnFileError, ...] = ("raise", "stdout")
OVERSIZES: tuple[Oversize, ...] = ("truncate", "drop")
RECORD_DETAILS: tuple[RecordDetails, ...] = ("auto", "on", "off")


DEFAULT_JOB = "alkana"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 5
#: The renderer's limit (``LOG_MAX_LINE_BYTES``): every line longer than this is shortened, in
#: the file, on stdout and to Loki alike.
DEFAULT_MAX_LINE_BYTES = 64 * 1024
#: Loki's own ``max_line_size`` default ("256KB", which Loki reads as 256,000 bytes): the Loki
#: sink's limit (``LOKI_MAX_LINE_BYTES``), for a line that the renderer let through (a raised
#: ``LOG_MAX_LINE_BYTES``) but Loki would refuse.
DEFAULT_LOKI_MAX_LINE_BYTES = 256_000
#: Loki's push endpoint, below its base URL (the push and query clients, the shippers' configs).
LOKI_PUSH_PATH = "/loki/api/v1/push"


def loki_base_url(url: str) -> str:
    """Loki's base URL: without a trailing ``/`` or the push path, if one was given."""
    url = url.strip().rstrip("/")
    return url.removesuffix(LOKI_PUSH_PATH).rstrip("/")


def loki_push_url(url: str) -> str:
    """The push endpoint for ``url``, which may be Loki's base URL or the endpoint itself."""
    return loki_base_url(url) + LOKI_PUSH_PATH


class LokiIdentity(TypedDict):
    """Who asks Loki: ``X-Scope-OrgID``, basic auth or a bearer token (None: not given)."""

    tenant: str | None
    username: str | None
    password: str | None
    token: str | None


OptionKind = Literal["count", "seconds", "choice", "bool", "tls"]


@dataclasses.dataclass(frozen=True)
class LokiOption:
    """What one option of the Loki sink accepts, and its default.

    Attributes:
        kind: ``count`` (an integer from ``low`` to ``high``), ``seconds`` (a finite number
            > 0), ``choice`` (one of ``choices``), ``bool``, or ``tls`` (a bool; for the sink
            also a CA bundle path).
        default: the value when none is given.
        setting: also a setting (``loki_<name>``, environment ``LOKI_<NAME>``); False: an
            argument of :class:`~alkana_logging.loki.LokiSink` only.
    """

    kind: OptionKind
    default: Any
    low: int = 1
    high: int | None = None
    choices: tuple[str, ...] = ()
    setting: bool = True


#: The Loki sink's options, once: LokiSink's arguments and their defaults, the ``loki_*``
#: settings and how they are read, and what ``LokiSink.from_settings`` hands over.
LOKI_OPTIONS: Mapping[str, LokiOption] = {
    "structured_metadata": LokiOption("bool", True),
    "verify_tls": LokiOption("tls", True),
    "batch_bytes": LokiOption("count", 1024 * 1024),
    "batch_wait": LokiOption("seconds", 1.0),
    "buffer_lines": LokiOption("count", 100_000),
    "buffer_bytes": LokiOption("count", 32 * 1024 * 1024),
    "max_line_bytes": LokiOption("count", DEFAULT_LOKI_MAX_LINE_BYTES),
    "oversize": LokiOption("choice", "truncate", choices=OVERSIZES),
    "connect_timeout": LokiOption("seconds", 5.0),
    "read_timeout": LokiOption("seconds", 10.0),
    "min_backoff": LokiOption("seconds", 0.5, setting=False),
    "max_backoff": LokiOption("seconds", 30.0, setting=False),
    "max_retry_time": LokiOption("seconds", 300.0),
    "flush_timeout": LokiOption("seconds", 5.0),
    "compress_level": LokiOption("count", 1, low=0, high=9, setting=False),
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclasses.dataclass(frozen=True)
class Settings:
    """The effective settings of the pipeline, as :func:`alkana_logging.setup` returns them."""

    level: str = "INFO"
    log_file: Path | None = Path("logs/app.log")
    stdout: bool = True
    format: Format = "json"
    rotation: Rotation = "size"
    max_bytes: int = DEFAULT_MAX_BYTES
    backup_count: int = DEFAULT_BACKUP_COUNT
    app_name: str = "app"
    app_env: str = "dev"
    host: str = dataclasses.field(default_factory=socket.gethostname)
    redact_keys: frozenset[str] = DEFAULT_REDACT_KEYS
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    on_file_error: OnFileError = "raise"
    capture_warnings: bool = True
    record_details: RecordDetails = "auto"
    loki_url: str | None = None
    loki_tenant: str | None = None
    loki_username: str | None = None
    loki_password: str | None = dataclasses.field(default=None, repr=False)
    loki_token: str | None = dataclasses.field(default=None, repr=False)
    loki_job: str = DEFAULT_JOB
    # The sink's options that are settings too take their defaults from LOKI_OPTIONS.
    loki_structured_metadata: bool = LOKI_OPTIONS["structured_metadata"].default
    loki_verify_tls: bool = LOKI_OPTIONS["verify_tls"].default
    loki_host_label: bool = True
    loki_batch_bytes: int = LOKI_OPTIONS["batch_bytes"].default
    loki_batch_wait: float = LOKI_OPTIONS["batch_wait"].default
    loki_buffer_lines: int = LOKI_OPTIONS["buffer_lines"].default
    loki_buffer_bytes: int = LOKI_OPTIONS["buffer_bytes"].default
    loki_max_line_bytes: int = LOKI_OPTIONS["max_line_bytes"].default
    loki_oversize: Oversize = LOKI_OPTIONS["oversize"].default
    loki_connect_timeout: float = LOKI_OPTIONS["connect_timeout"].default
    loki_read_timeout: float = LOKI_OPTIONS["read_timeout"].default
    loki_max_retry_time: float = LOKI_OPTIONS["max_retry_time"].default
    loki_flush_timeout: float = LOKI_OPTIONS["flush_timeout"].default
    loki_flush_on_sigterm: bool = True

    @property
    def level_number(self) -> int:
        return _LEVEL_NUMBERS[self.level]

    @property
    def loki_identity(self) -> LokiIdentity:
        """The tenant and credentials, as the keyword arguments of both Loki clients."""
        return LokiIdentity(
            tenant=self.loki_tenant,
            username=self.loki_username,
            password=self.loki_password,
            token=self.loki_token,
        )

    def __repr__(self) -> str:
        # Credentials are never printed: the password and token are left out, a URL's
        # user-info (and any secret query value) is masked.
        shown = ", ".join(
            f"{f.name}={mask_url(getattr(self, f.name))!r}"
            for f in dataclasses.fields(self)
            if f.repr
        )
        return f"{type(self).__name__}({shown})"


_LEVEL_NUMBERS = {level.upper(): number for level, number in F.LEVEL_NUMBERS.items()}

# setting name -> environment variable
ENV_VARS: Mapping[str, str] = {
    "level": "LOG_LEVEL",
    "log_file": "LOG_FILE",
    "stdout": "LOG_STDOUT",
    "format": "LOG_FORMAT",
    "rotation": "LOG_ROTATION",
    "max_bytes": "LOG_MAX_BYTES",
    "backup_count": "LOG_BACKUP_COUNT",
    "app_name": "APP_NAME",
    "app_env": "APP_ENV",
    "host": "LOG_HOST",
    "redact_keys": "LOG_REDACT_KEYS",
    "max_line_bytes": "LOG_MAX_LINE_BYTES",
    "on_file_error": "LOG_ON_FILE_ERROR",
    "capture_warnings": "LOG_CAPTURE_WARNINGS",
    "record_details": "LOG_RECORD_DETAILS",
    "loki_url": "LOKI_URL",
    "loki_tenant": "LOKI_TENANT",
    "loki_username": "LOKI_USERNAME",
    "loki_password": "LOKI_PASSWORD",
    "loki_token": "LOKI_TOKEN",
    "loki_job": "LOKI_JOB",
    "loki_structured_metadata": "LOKI_STRUCTURED_METADATA",
    "loki_verify_tls": "LOKI_VERIFY_TLS",
    "loki_host_label": "LOKI_HOST_LABEL",
    "loki_batch_bytes": "LOKI_BATCH_BYTES",
    "loki_batch_wait": "LOKI_BATCH_WAIT",
    "loki_buffer_lines": "LOKI_BUFFER_LINES",
    "loki_buffer_bytes": "LOKI_BUFFER_BYTES",
    "loki_max_line_bytes": "LOKI_MAX_LINE_BYTES",
    "loki_oversize": "LOKI_OVERSIZE",
    "loki_connect_timeout": "LOKI_CONNECT_TIMEOUT",
    "loki_read_timeout": "LOKI_READ_TIMEOUT",
    "loki_max_retry_time": "LOKI_MAX_RETRY_TIME",
    "loki_flush_timeout": "LOKI_FLUSH_TIMEOUT",
    "loki_flush_on_sigterm": "LOKI_FLUSH_ON_SIGTERM",
}


def _where(name: str, caller: str | None) -> str:
    """How an error names a setting: its variable, or the caller's keyword argument."""
    return f"{ENV_VARS[name]} (environment)" if caller is None else f"{caller}({name}=...)"


def _truth(where: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError(
        f"{where}: got {value!r}; expected true or false (1/0, yes/no, on/off)"
    )


def _number(expected: str, value: Any, kind: type[int] | type[float]) -> Any:
    """``value`` read as ``kind``, from text too; never from a bool (``expected``: the error)."""
    if isinstance(value, bool):
        raise ConfigurationError(expected)
    try:
        return kind(value.strip()) if isinstance(value, str) else kind(value)
    except (TypeError, ValueError):
        raise ConfigurationError(expected) from None


def _count(where: str, value: Any, low: int, high: int | None = None) -> int:
    bounds = f">= {low}" if high is None else f"from {low} to {high}"
    expected = f"{where}: got {value!r}; expected an integer {bounds}"
    number: int = _number(expected, value, int)
    if number < low or (high is not None and number > high):
        raise ConfigurationError(expected)
    return number


def _seconds(where: str, value: Any) -> float:
    expected = f"{where}: got {value!r}; expected a number of seconds > 0"
    number: float = _number(expected, value, float)
    if not number > 0 or number == float("inf"):
        raise ConfigurationError(expected)
    return number


def _one_of(where: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in choices:
        raise ConfigurationError(f"{where}: got {value!r}; expected one of {', '.join(choices)}")
    return str(text)


def _as_bool(name: str, value: Any, where: str) -> bool:
    return _truth(where, value)


def _as_int(name: str, value: Any, where: str, minimum: int) -> int:
    return _count(where, value, minimum)


def _as_choice(name: str, value: Any, where: str, choices: Iterable[str]) -> str:
    return _one_of(where, value, choices)


#: What a Loki option given to LokiSink (not read from text) must be an instance of, and what
#: the error says it expected.
_OPTION_TYPES: Mapping[OptionKind, tuple[tuple[type, ...], str]] = {
    "count": ((int,), "an integer"),
    "seconds": ((int, float), "a number of seconds > 0"),
    "choice": ((str,), "a string"),
    "bool": ((bool,), "True or False"),
    "tls": ((bool, str), "a bool or a CA bundle path"),
}


def check_loki_option(
    name: str, value: Any, where: str | None = None, *, text: bool = False
) -> Any:
    """``value`` as the Loki option ``name`` (see :data:`LOKI_OPTIONS`) accepts it.

    Args:
        name: the option (``batch_wait``; its setting is ``loki_batch_wait``).
        value: the value given.
        where: how errors name the option (``name`` when omitted).
        text: the value may be text to read (``"5"``, ``"true"``), as from the environment or
            ``setup()``; else it must have the option's type already.

    Raises:
        TypeError: not ``text``, and not of the option's type.
        ConfigurationError: a value the option does not accept (a ``ValueError``).
    """
    option = LOKI_OPTIONS[name]
    where = where or name
    kind = option.kind
    if not text:
        types, expected = _OPTION_TYPES[kind]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise TypeError(f"{where}: got {value!r}; expected {expected}")
        if kind == "tls":
            return value  # a bool, or a CA bundle path
    if kind == "count":
        return _count(where, value, option.low, option.high)
    if kind == "seconds":
        return _seconds(where, value)
    if kind == "choice":
        return _one_of(where, value, option.choices)
    return _truth(where, value)


def loki_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of :data:`LOKI_OPTIONS`: the ``given`` ones (None: not given) checked as
    :func:`check_loki_option` does, the others their defaults.

    Raises:
        TypeError: a value of the wrong type.
        ConfigurationError: a value that is not accepted (a ``ValueError``).
    """
    options = {
        name: option.default if given.get(name) is None else check_loki_option(name, given[name])
        for name, option in LOKI_OPTIONS.items()
    }
    if options["max_backoff"] < options["min_backoff"]:
        raise ConfigurationError(
            f"max_backoff: got {options['max_backoff']!r}; expected a value >= min_backoff "
            f"({options['min_backoff']!r})"
        )
    return options


def _as_level(name: str, value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        for level_name, number in _LEVEL_NUMBERS.items():
            if number == value:
                return level_name
    if isinstance(value, str):
        text = value.strip().upper()
        if text == "WARN":
            text = "WARNING"
        if text in _LEVEL_NUMBERS:
            return text
    raise ConfigurationError(f"{where}: got {value!r}; expected one of {', '.join(LEVEL_NAMES)}")


def _as_text(name: str, value: Any, where: str, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{where}: got {value!r}; expected a string")
    text: str = value.strip()
    if not text and not empty_ok:
        raise ConfigurationError(f"{where}: got an empty value; expected text")
    return text


def _as_keys(name: str, value: Any, where: str) -> frozenset[str]:
    if isinstance(value, str):
        items: Iterable[Any] = value.split(",")
    elif isinstance(value, Iterable):
        items = value
    else:
        raise ConfigurationError(f"{where}: got {value!r}; expected key names (comma-separated)")
    keys = set()
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(f"{where}: got {item!r} in {value!r}; expected key names")
        if item.strip():
            keys.add(normalise_key(item.strip()))
    return DEFAULT_REDACT_KEYS | frozenset(keys)


def _optional_text(name: str, value: Any, where: str) -> str | None:
    if value is None:
        return None
    text = _as_text(name, value, where, empty_ok=True)
    return text or None


Parser: TypeAlias = Callable[[str, Any, str], Any]


def _as_path(name: str, value: Any, where: str) -> Path | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigurationError(f"{where}: got {value!r}; expected a file path or empty")
    return Path(value).expanduser()


def _choice(choices: Iterable[str]) -> Parser:
    return lambda name, value, where: _as_choice(name, value, where, choices)


def _int_from(minimum: int) -> Parser:
    return lambda name, value, where: _as_int(name, value, where, minimum)


def _loki_option(option: str) -> Parser:
    return lambda name, value, where: check_loki_option(option, value, where, text=True)


def _text(name: str, value: Any, where: str) -> str:
    return _as_text(name, value, where)


#: How each setting's value is read; a setting not listed is optional text.
_PARSERS: Mapping[str, Parser] = {
    "level": _as_level,
    "log_file": _as_path,
    "format": _choice(FORMATS),
    "rotation": _choice(ROTATIONS),
    "on_file_error": _choice(ON_FILE_ERRORS),
    "record_details": _choice(RECORD_DETAILS),
    "max_bytes": _int_from(0),
    "backup_count": _int_from(0),
    "max_line_bytes": _int_from(1024),
    "redact_keys": _as_keys,
    **dict.fromkeys(("app_name", "app_env", "host", "loki_job"), _text),
    **dict.fromkeys(
        ("stdout", "capture_warnings", "loki_host_label", "loki_flush_on_sigterm"), _as_bool
    ),
    **{f"loki_{name}": _loki_option(name) for name, o in LOKI_OPTIONS.items() if o.setting},
}


def _parse(name: str, value: Any, caller: str | None) -> Any:
    """``value`` of the setting ``name``, from the environment (``caller`` None) or given to
    ``caller`` (``setup``, ``JsonFormatter``, ``LokiHandler``), as the setting accepts it."""
    parser: Parser = _PARSERS.get(name, _optional_text)
    return parser(name, value, _where(name, caller))


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    caller: str = "setup",
) -> Settings:
    """Build the effective settings.

    Args:
        overrides: keyword arguments given to ``setup()``; ``None`` values mean "not given".
        environ: the environment to read (``os.environ`` when omitted).
        caller: what took the keyword arguments, as errors name them (``setup(level=...)``,
            ``JsonFormatter(app_name=...)``).

    Returns:
        The frozen, validated settings.

    Raises:
        TypeError: an override names no setting.
        ConfigurationError: a value is not accepted; the message names the setting.
    """
    overrides = dict(overrides or {})
    environ = os.environ if environ is None else environ
    unknown = sorted(set(overrides) - set(ENV_VARS))
    if unknown:
        raise TypeError(
            f"{caller}() got unexpected keyword argument(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(ENV_VARS))}"
        )
    values: dict[str, Any] = {}
    for name, env_var in ENV_VARS.items():
        if overrides.get(name) is not None:
            values[name] = _parse(name, overrides[name], caller)
        elif env_var in environ:
            values[name] = _parse(name, environ[env_var], None)
    settings = Settings(**values)
    if settings.rotation == "none" and settings.log_file is not None:
        # "none" is the stdout-only mode (containers, the journal): no file is written.
        settings = dataclasses.replace(settings, log_file=None)
    if settings.log_file is None and not settings.stdout and not settings.loki_url:
        raise ConfigurationError(
            "LOG_STDOUT is false and there is no log file (LOG_FILE is empty or LOG_ROTATION is "
            "none) nor LOKI_URL: nothing would be written; set LOG_FILE, LOG_STDOUT=true or "
            "LOKI_URL"
        )
    return settings
