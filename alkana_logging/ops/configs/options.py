"""The render options and what every config artefact shares.

:class:`RenderOptions` (the defaults, and the validation of every option: a value that is not
accepted is a :class:`RenderError` naming the option), :class:`Artifact` (one rendered file) and
:func:`write`, the generated-file header, and YAML quoting.

Every artefact is text built from the contract (:mod:`alkana_logging.fields`) and the presets
(:mod:`alkana_logging.ops.presets`): the alert rules and the dashboard panels take their LogQL
from the presets, the shipper configs take their labels and the timestamp key from the
contract. The repository's committed files are the output with the default options, and a test
fails when they drift.

YAML is written as text (values quoted as JSON strings, which YAML reads the same way), so the
package needs no YAML library.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any, Final
from urllib.parse import urlsplit

from alkana_logging import fields as F
from alkana_logging.ops import presets as P
from alkana_logging.redaction import mask_url
from alkana_logging.settings import (
    DEFAULT_JOB,
    DEFAULT_LOKI_MAX_LINE_BYTES,
    loki_base_url,
    loki_push_url,
)

DEFAULT_APP: Final = "alkana-dashboard"
DEFAULT_ENV: Final = "production"
DEFAULT_LOG_DIR: Final = "/var/log/alkana-dashboard"
DEFAULT_LOKI_URL: Final = "http://loki:3100"
DEFAULT_USER: Final = "alkana"
DEFAULT_GROUP: Final = "alkana"
DEFAULT_ALERTMANAGER_URL: Final = "http://alertmanager:9093"
#: PagerDuty's events API v2 (``routing_key``; ``service_key`` would mean v1, which ignores
#: ``url``).
DEFAULT_PAGER_URL: Final = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_EMAIL_TO: Final = "alkana-alerts@example.com"
DEFAULT_EMAIL_FROM: Final = "alertmanager@example.com"
DEFAULT_SMARTHOST: Final = "smtp.example.com:587"
DEFAULT_SECRETS_DIR: Final = "/etc/alertmanager/secrets"

#: Loki refuses lines longer than its ``max_line_size`` (256 KB by default); the shippers drop
#: them first, with a reason their drop counter shows, instead of having whole batches refused.
#: "KB" is 1000 bytes to Loki, Promtail and Alloy alike.
MAX_LINE_SIZE: Final = f"{DEFAULT_LOKI_MAX_LINE_BYTES // 1000}KB"
DROP_REASON: Final = "line_too_long"
#: A line of spaces is a part of a line that a full disk cut, blanked where it was (the line
#: itself is written again whole): nothing to ship.
BLANK_LINE: Final = "^ *$"
BLANK_REASON: Final = "blank_line"

# Every pattern is used with fullmatch(): Python's `$` also matches before a trailing "\n".
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
#: C0 and C1 controls, DEL, and the line and paragraph separators (YAML 1.1 line breaks).
_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: A URL's characters (RFC 3986, printable ASCII; no quotes, braces, backslash, white space).
_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]+")
#: An RFC 5322 addr-spec in its dot-atom form, which Go's net/mail (Alertmanager) accepts:
#: no display name, comments, quoted local part or ';' (a list) - and no braces (templates).
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`|~-]+"
_EMAIL = re.compile(rf"(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@(?P<domain>[A-Za-z0-9.-]+)")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")
#: Alertmanager's (Prometheus's model.ParseDuration) form: each unit at most once, largest
#: first (`1h30m`, not `1h1h` or `30m1h`), or a bare `0`.
_AM_DURATION = re.compile(
    r"0|(?:(?P<y>[0-9]+)y)?(?:(?P<w>[0-9]+)w)?(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?"
    r"(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?(?:(?P<ms>[0-9]+)ms)?"
)
_DURATION_MS: Final = {unit: round(s * 1000) for unit, s in P.DURATION_UNITS_S.items()}


def _valid_host(host: str) -> bool:
    """A DNS name (labels of letters, digits and '-', not at either end), an IPv4 address, or
    an IPv6 address in brackets."""
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if len(host) > 253:
        return False
    labels = host.removesuffix(".").split(".")
    return all(_HOST_LABEL.fullmatch(label) for label in labels)


def _valid_port(port: str | int | None) -> bool:
    return port is not None and 1 <= int(port) <= 65535


def _duration_ms(value: str) -> int | None:
    """Milliseconds of an Alertmanager duration, or ``None`` when it would not accept it."""
    match = _AM_DURATION.fullmatch(value)
    if match is None or not value:
        return None
    total = sum(int(n) * _DURATION_MS[unit] for unit, n in match.groupdict().items() if n)
    return total if total * 1_000_000 < 2**63 else None  # Go's time.Duration


def _url_problem(value: object) -> str | None:  # noqa: PLR0911 - one reason per check
    """Why ``value`` is not accepted as an http(s) endpoint URL, or ``None``."""
    if not isinstance(value, str) or not _URL.fullmatch(value):
        return "expected an http(s):// URL"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "expected an http(s):// URL with a valid port"
    if "@" in parts.netloc:
        return "expected no user-info (a secret would be written into the file)"
    if parts.query or "?" in value:
        return "expected no query string (a secret would be written into the file)"
    if parts.fragment or "#" in value:
        return "expected no fragment"
    host = parts.netloc
    colon = host.rfind(":")
    if colon > host.rfind("]"):
        host = host[:colon]
    if not host or not _valid_host(host):
        return "expected a valid host name"
    if port is not None and not _valid_port(port):
        return "expected a port 1-65535"
    return None


def _shown_url(value: object) -> str:
    """``value`` for an error message, without its user-info or query (secrets)."""
    if not isinstance(value, str):
        return repr(value)
    shown = mask_url(value)  # user-info, of a mistyped URL too (``u:p@h``, ``http:/u:p@h``)
    shown = re.sub(r"\?.*", "?[REDACTED]", shown, flags=re.S)
    return repr(shown)


class RenderError(ValueError):
    """A render option is not accepted; the message names it."""


@dataclasses.dataclass(frozen=True)
class RenderOptions:
    """What the rendered artifacts are for.

    Attributes:
        job: the ``job`` label.
        app: the ``app`` label (and the logrotate file's name).
        env: the ``env`` label.
        host: a static ``host`` label, or ``None`` for none.
        log_dir: where the application writes its ``*.log`` files (absolute).
        loki_url: Loki's base URL as the shippers and Grafana reach it (its push endpoint,
            ``.../loki/api/v1/push``, is accepted too).
        user: the owner of the log files (logrotate ``create`` and ``su``).
        group: their group.
        alertmanager_url: Alertmanager's base URL as Loki's ruler reaches it.
        pager_url: the PagerDuty events API v2 endpoint.
        email_to: where the e-mail receiver sends.
        email_from: the sender of those e-mails.
        smarthost: the SMTP server, ``host:port``.
        smtp_user: the SMTP user name (``None``: ``email_from``).
        smtp_require_tls: whether Alertmanager insists on STARTTLS with the SMTP server.
        secrets_dir: the directory of the secret files Alertmanager reads.
        group_wait: how long a new alert group waits for more alerts before it is sent.
        group_interval: how long before a changed group (new or resolved alerts) is sent again.
        repeat_interval: how long before a group that did not change is sent again.

    Raises:
        RenderError: a value is not accepted.
    """

    job: str = DEFAULT_JOB
    app: str = DEFAULT_APP
    env: str = DEFAULT_ENV
    host: str | None = None
    log_dir: str = DEFAULT_LOG_DIR
    loki_url: str = DEFAULT_LOKI_URL
    user: str = DEFAULT_USER
    group: str = DEFAULT_GROUP
    alertmanager_url: str = DEFAULT_ALERTMANAGER_URL
    pager_url: str = DEFAULT_PAGER_URL
    email_to: str = DEFAULT_EMAIL_TO
    email_from: str = DEFAULT_EMAIL_FROM
    smarthost: str = DEFAULT_SMARTHOST
    smtp_user: str | None = None
    smtp_require_tls: bool = True
    secrets_dir: str = DEFAULT_SECRETS_DIR
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"

    def __post_init__(self) -> None:
        for name in ("job", "app", "env", "host"):
            value = getattr(self, name)
            if name == "host" and value is None:
                continue
            if not isinstance(value, str) or not value or _UNSAFE_TEXT.search(value):
                raise RenderError(
                    f"--{name}: got {value!r}; expected a non-empty label value without "
                    "control characters"
                )
            if name in ("app", "env") and ("{{" in value or "}}" in value):
                # They reach the alerts' annotations, which Loki and Alertmanager expand.
                raise RenderError(
                    f"--{name}: got {value!r}; expected a label value without '{{{{' or '}}}}' "
                    "(template delimiters)"
                )
        for name in ("user", "group"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise RenderError(
                    f"--{name}: got {value!r}; expected a user or group name "
                    "(letters, digits, '.', '_', '-')"
                )
        if not self.log_dir.startswith("/") or re.search(
            r'[\x00-\x1f\x7f-\x9f"{}*?\[\]\s\u2028\u2029]', self.log_dir
        ):
            raise RenderError(
                f"--log-dir: got {self.log_dir!r}; expected an absolute directory path without "
                "quotes, braces, glob characters, white space (logrotate splits paths on it) or "
                "control characters"
            )
        problem = _url_problem(self.loki_url)
        if problem is not None:
            raise RenderError(f"--loki-url: got {_shown_url(self.loki_url)}; {problem}")
        # Loki's base URL or its push endpoint, as the push client accepts: kept as the base.
        base = self.loki_url.rstrip("/")
        object.__setattr__(self, "loki_url", loki_base_url(base) or base)
        self._check_alerting()

    def _check_alerting(self) -> None:
        for name in ("alertmanager_url", "pager_url"):
            value = getattr(self, name)
            problem = _url_problem(value)
            if problem is not None:
                flag = "--" + name.replace("_", "-")
                raise RenderError(f"{flag}: got {_shown_url(value)}; {problem}")
        if self.smtp_user is None:
            object.__setattr__(self, "smtp_user", self.email_from)
        for name in ("email_to", "email_from"):
            value = getattr(self, name)
            match = _EMAIL.fullmatch(value) if isinstance(value, str) else None
            if match is None or len(value) > 254 or not _valid_host(match["domain"]):
                flag = "--" + name.replace("_", "-")
                raise RenderError(
                    f"{flag}: got {value!r}; expected an e-mail address (one local@domain, "
                    "no display name, comments or lists)"
                )
        if (
            not isinstance(self.smtp_user, str)
            or not self.smtp_user
            or (_UNSAFE_TEXT.search(self.smtp_user) or "{" in self.smtp_user)
        ):
            raise RenderError(
                f"--smtp-user: got {self.smtp_user!r}; expected a user name without control "
                "characters or braces"
            )
        hostport = _HOST_PORT.fullmatch(self.smarthost) if isinstance(self.smarthost, str) else None
        if (
            hostport is None
            or not _valid_host(hostport["host"])
            or not _valid_port(hostport["port"])
        ):
            raise RenderError(
                f"--smarthost: got {self.smarthost!r}; expected host:port (a valid host name "
                "or address, a port 1-65535)"
            )
        if not isinstance(self.smtp_require_tls, bool):
            raise RenderError(f"smtp_require_tls: got {self.smtp_require_tls!r}; expected a bool")
        if not self.secrets_dir.startswith("/") or re.search(
            r'[\x00-\x1f"\'{}*?\[\]\s]', self.secrets_dir
        ):
            raise RenderError(
                f"--secrets-dir: got {self.secrets_dir!r}; expected an absolute directory path "
                "without quotes, braces, glob characters or white space"
            )
        for name in ("group_wait", "group_interval", "repeat_interval"):
            value = getattr(self, name)
            flag = "--" + name.replace("_", "-")
            ms = _duration_ms(value) if isinstance(value, str) else None
            if ms is None:
                raise RenderError(
                    f"{flag}: got {value!r}; expected a duration such as 30s, 5m, 4h, 1h30m "
                    "(each unit once, largest first)"
                )
            if ms == 0 and name != "group_wait":
                raise RenderError(f"{flag}: got {value!r}; expected a duration above zero")

    @property
    def labels(self) -> dict[str, str]:
        """The static stream labels, in the contract's order."""
        values = {F.LABEL_JOB: self.job, F.LABEL_APP: self.app, F.LABEL_ENV: self.env}
        if self.host is not None:
            values[F.LABEL_HOST] = self.host
        return {label: values[label] for label in F.STREAM_LABELS if label in values}

    @property
    def log_glob(self) -> str:
        """The shippers' and logrotate's glob: current files only, rotated names fall outside."""
        return str(PurePosixPath(self.log_dir) / "*.log")

    @property
    def push_url(self) -> str:
        return loki_push_url(self.loki_url)

    def secret(self, name: str) -> str:
        """The path of one of Alertmanager's secret files."""
        return str(PurePosixPath(self.secrets_dir) / name)

    def preset(self, name: str, **params: Any) -> str:
        """A preset's LogQL for these labels."""
        return P.get(name).render(self.labels, **params)


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One rendered file: its path relative to the repository root, and its text."""

    path: str
    text: str


def _q(value: str) -> str:
    """A YAML (or Alloy) double-quoted string; JSON's escapes mean the same there."""
    return json.dumps(value, ensure_ascii=False)


def _header(target: str, comment: str = "#") -> str:
    return (
        f"{comment} Generated by `alkana-logging render {target}` from the package's field names\n"
        f"{comment} and LogQL presets. Re-render (options: --job --app --env --host --log-dir\n"
        f"{comment} --loki-url) instead of editing by hand.\n"
    )


def write(artifacts: Iterable[Artifact], root: str | Path) -> list[Path]:
    """Write ``artifacts`` under ``root`` at their paths (directories created); return them."""
    written = []
    for artifact in artifacts:
        path = Path(root) / artifact.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(artifact.text, encoding="utf-8")
        written.append(path)
    return written
