"""Renders the operational side from one source: shipper configs, logrotate, Loki rules, Grafana.

Every artifact is text built here from the contract (:mod:`alkana_logging.fields`) and the
presets (:mod:`alkana_logging.ops.presets`): the alert rules and the dashboard panels take their
LogQL from the presets, the shipper configs take their labels and the timestamp key from the
contract. The repository's committed files are this module's output with the default options,
and a test fails when they drift.

YAML is written as text (values quoted as JSON strings, which YAML reads the same way), so the
package needs no YAML library. The dashboard JSON is built from plain dicts: it is a dozen
panels, Grafana migrates older dashboard JSON on load, and a generator library would add a
dependency whose output changes with its own releases.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Final
from urllib.parse import urlsplit

from alkana_logging import fields as F
from alkana_logging.ops import presets as P
from alkana_logging.settings import DEFAULT_JOB

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
#: The secret files Alertmanager reads (``*_file`` fields), under ``secrets_dir``.
CHAT_WEBHOOK_FILE: Final = "chat_webhook_url"
PAGER_ROUTING_FILE: Final = "pagerduty_routing_key"
SMTP_AUTH_FILE: Final = "smtp_password"
#: The receivers, by what they are for.
RECEIVER_PAGER: Final = "pager"
RECEIVER_CHAT: Final = "chat"
RECEIVER_EMAIL: Final = "email"

#: Loki refuses lines longer than its ``max_line_size`` (256 KB by default); the shippers drop
#: them first, with a reason their drop counter shows, instead of having whole batches refused.
MAX_LINE_SIZE: Final = "256KB"
DROP_REASON: Final = "line_too_long"

#: The Grafana datasource uid every panel refers to (the provisioning file creates it).
DATASOURCE_UID: Final = "alkana-loki"
DATASOURCE: Final = {"type": "loki", "uid": DATASOURCE_UID}

#: Images of the local stack (pinned: a compose file that pulls "latest" changes by itself).
LOKI_IMAGE: Final = "grafana/loki:3.7.1"
ALLOY_IMAGE: Final = "grafana/alloy:v1.21.0"
GRAFANA_IMAGE: Final = "grafana/grafana:12.3.1"
#: The version the tests run (Debian's prometheus-alertmanager): what is tested is what runs.
ALERTMANAGER_IMAGE: Final = "prom/alertmanager:v0.25.0"
#: The example backend's image: the package is installed into it from the repository.
APP_IMAGE: Final = "python:3.11-slim-bookworm"
APP_PORT: Final = 8000

#: Alert thresholds (the design's numbers).
ERROR_RATIO_THRESHOLD: Final = 0.05
SLOW_P95_MS: Final = 2000
SPIKE_MIN_LINES: Final = 10
SPIKE_FACTOR: Final = 3
DB_CONNECTIONS_MAX: Final = P.DEFAULT_DB_CONNECTIONS_MAX

TARGETS: Final = (
    "promtail",
    "alloy",
    "logrotate",
    "rules",
    "alertmanager",
    "dashboard",
    "compose",
)

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
_DURATION_MS: Final = {
    "y": 365 * 86400_000,
    "w": 7 * 86400_000,
    "d": 86400_000,
    "h": 3600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}


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
    shown = re.sub(r"(?<=://)[^/?#]*@", "[REDACTED]@", value)
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
        if not isinstance(self.loki_url, str) or not re.fullmatch(
            r"https?://[^\s\"\x00-\x1f\x7f-\x9f\u2028\u2029]+", self.loki_url
        ):
            raise RenderError(f"--loki-url: got {self.loki_url!r}; expected an http(s):// URL")
        # Loki's base URL or its push endpoint, as the push client accepts: kept as the base.
        base = self.loki_url.rstrip("/")
        object.__setattr__(self, "loki_url", base.removesuffix("/loki/api/v1/push") or base)
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
        return self.loki_url.rstrip("/") + "/loki/api/v1/push"

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


#: The render options of the Alertmanager file (its header lists them).
ALERTMANAGER_OPTIONS: Final = (
    "--alertmanager-url",
    "--pager-url",
    "--email-to",
    "--email-from",
    "--smtp-user",
    "--smarthost",
    "--smtp-no-tls",
    "--secrets-dir",
    "--group-wait",
    "--group-interval",
    "--repeat-interval",
)


def _header(target: str, comment: str = "#") -> str:
    if target == "alertmanager":
        words = f"Generated by `alkana-logging render {target}`. Re-render (options: "
        words += " ".join(ALERTMANAGER_OPTIONS) + ") instead of editing by hand."
        return "".join(f"{comment} {line}\n" for line in textwrap.wrap(words, 92))
    return (
        f"{comment} Generated by `alkana-logging render {target}` from the package's field names\n"
        f"{comment} and LogQL presets. Re-render (options: --job --app --env --host --log-dir\n"
        f"{comment} --loki-url) instead of editing by hand.\n"
    )


# -- shippers -------------------------------------------------------------------------------------


def promtail(options: RenderOptions) -> list[Artifact]:
    """``promtail/config.yml``: tail ``<log-dir>/*.log`` with static labels and line timestamps."""
    labels = "".join(f"          {k}: {_q(v)}\n" for k, v in options.labels.items())
    text = f"""{_header("promtail")}#
# Promtail reached end of life on 2026-03-02: new installs should use Grafana Alloy
# (integrations/alloy/config.alloy is the same pipeline).

server:
  http_listen_port: 9080
  grpc_listen_port: 0

positions:
  # Where Promtail remembers how far it has read each file (keep it across restarts).
  filename: /var/lib/promtail/positions.yaml

clients:
  - url: {_q(options.push_url)}

scrape_configs:
  - job_name: {_q(options.job)}
    static_configs:
      - targets: [localhost]
        labels:
          # Static labels only. request_id, trace_id and user stay in the JSON line.
{labels}          # Current files only: rotated names (app.log.1, app.log-20261126-...) fall
          # outside this glob, so no line is shipped twice.
          __path__: {_q(options.log_glob)}
    pipeline_stages:
      # Loki refuses lines over {MAX_LINE_SIZE}: drop them here, counted under a reason.
      - drop:
          longer_than: {MAX_LINE_SIZE}
          drop_counter_reason: {DROP_REASON}
      - json:
          expressions:
            {F.TIMESTAMP}: {F.TIMESTAMP}
      # The line's own time (RFC 3339, UTC, microseconds), not the time Promtail read it.
      - timestamp:
          source: {F.TIMESTAMP}
          format: RFC3339Nano
      # Promtail adds the file's path as a label; the label set stays static without it.
      - labeldrop:
          - filename
"""
    return [Artifact("promtail/config.yml", text)]


def alloy(options: RenderOptions) -> list[Artifact]:
    """``integrations/alloy/config.alloy``: the Promtail pipeline for Grafana Alloy."""
    width = max(len("__path__"), *(len(k) for k in options.labels)) + 2
    targets = [f"    {_q('__path__').ljust(width)} = {_q(options.log_glob)},"]
    targets += [f"    {_q(k).ljust(width)} = {_q(v)}," for k, v in options.labels.items()]
    target_lines = "\n".join(targets)
    text = f"""{_header("alloy", "//")}
// Current files only: rotated names (app.log.1, app.log-20261126-...) fall outside the glob.
// Static labels only; request_id, trace_id and user stay in the JSON line.
local.file_match "alkana" {{
  path_targets = [{{
{target_lines}
  }}]
}}

loki.source.file "alkana" {{
  targets    = local.file_match.alkana.targets
  forward_to = [loki.process.alkana.receiver]
}}

loki.process "alkana" {{
  forward_to = [loki.write.default.receiver]

  // Loki refuses lines over {MAX_LINE_SIZE}: drop them here, counted under a reason.
  stage.drop {{
    longer_than         = {_q(MAX_LINE_SIZE)}
    drop_counter_reason = {_q(DROP_REASON)}
  }}

  stage.json {{
    expressions = {{ {_q(F.TIMESTAMP)} = {_q(F.TIMESTAMP)} }}
  }}

  // The line's own time (RFC 3339, UTC, microseconds), not the time Alloy read it.
  stage.timestamp {{
    source = {_q(F.TIMESTAMP)}
    format = "RFC3339Nano"
  }}

  // loki.source.file adds the file's path as a label; the label set stays static without it.
  stage.label_drop {{
    values = ["filename"]
  }}
}}

loki.write "default" {{
  endpoint {{
    url = {_q(options.push_url)}
  }}
}}
"""
    return [Artifact("integrations/alloy/config.alloy", text)]


def logrotate(options: RenderOptions) -> list[Artifact]:
    """``logrotate/<app>``: rotation by logrotate for ``LOG_ROTATION=external``."""
    text = f"""{_header("logrotate")}#
# For LOG_ROTATION=external: logrotate renames the file and creates a new one; the library
# notices the new inode and reopens by itself. Hence no copytruncate (it loses the lines
# written between the copy and the truncation) and no postrotate reload (a signal would stop
# a uvicorn worker). Install as /etc/logrotate.d/{options.app}; test with `logrotate -d`.
{options.log_glob} {{
    # Rotate as the files' owner, never as root in a directory the application can write.
    su {options.user} {options.group}
    daily
    # Also rotate within the day once a file passes 10 MB (needs logrotate run hourly).
    maxsize 10M
    rotate 14
    missingok
    notifempty
    create 0640 {options.user} {options.group}
    # app.log-20261126-1764170000: the epoch seconds keep two rotations of one day apart,
    # and the names sort by age. Rotated names fall outside the shippers' *.log glob.
    dateext
    dateformat -%Y%m%d-%s
    compress
    # The newest rotated file stays uncompressed until the next rotation: a process that
    # has not reopened yet may still append to it.
    delaycompress
}}
"""
    return [Artifact(f"logrotate/{options.app}", text)]


# -- Loki rules -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rule:
    """One alert rule; ``expr`` comes from a preset."""

    alert: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str


def _rule_groups(options: RenderOptions) -> list[tuple[str, str, list[Rule]]]:
    o = options
    ratio = o.preset("error_ratio", range="5m")
    p95 = o.preset("latency_p95", range="5m", by=F.ROUTE)
    recent_errors = o.preset("error_log_lines", range="5m")
    # The hour before the last five minutes, scaled to five minutes: the usual level.
    usual_errors = o.preset("error_log_lines", range="1h", offset="5m")
    where = f"{o.app} ({o.env})"
    http = [
        Rule(
            "HighErrorRate",
            f"({ratio}) > {ERROR_RATIO_THRESHOLD}",
            "5m",
            "critical",
            f"More than {ERROR_RATIO_THRESHOLD:.0%} of the HTTP requests of {where} fail",
            f"{{{{ $value | humanizePercentage }}}} of the HTTP requests of {where} ended with a "
            f"5xx status over the last 5 minutes (threshold {ERROR_RATIO_THRESHOLD:.0%}).",
        ),
        Rule(
            "SlowAPIResponses",
            f"({p95}) > {SLOW_P95_MS}",
            "10m",
            "warning",
            f"p95 latency of {{{{ $labels.{F.ROUTE} }}}} on {where} is over {SLOW_P95_MS} ms",
            f"The 95th percentile of duration_ms of {{{{ $labels.{F.ROUTE} }}}} is "
            f"{{{{ $value | humanize }}}} ms over the last 5 minutes (threshold {SLOW_P95_MS} ms).",
        ),
        Rule(
            "ErrorLogSpike",
            f"(({recent_errors}) > {SPIKE_MIN_LINES}) unless "
            f"(({recent_errors}) <= {SPIKE_FACTOR} * ({usual_errors}) / 12)",
            "2m",
            "warning",
            f"Error lines spike on {where}",
            f"{{{{ $value }}}} lines at level error or critical in the last 5 minutes: more "
            f"than {SPIKE_MIN_LINES}, and more than {SPIKE_FACTOR} times the 5-minute average "
            "of the hour before.",
        ),
    ]
    stale_after = P.DEFAULT_STALE_AFTER
    lookback = P.DEFAULT_ETL_LOOKBACK
    etl = [
        Rule(
            "ETLStale",
            o.preset("etl_stale", range=lookback, stale_after=stale_after),
            "15m",
            "critical",
            f"ETL table {{{{ $labels.{F.TABLE} }}}} of {where} has not loaded for {stale_after}",
            f"Table {{{{ $labels.{F.TABLE} }}}} ran in the last {lookback} but has had no "
            f"successful run for {stale_after}. Last success: {{{{ if eq $value 0.0 }}}}none in "
            f"{lookback}{{{{ else }}}}{{{{ $value | humanizeTimestamp }}}}{{{{ end }}}}.",
        ),
        Rule(
            "ETLFailed",
            o.preset("etl_failing", range="24h"),
            "0m",
            "warning",
            f"The last ETL run of {{{{ $labels.{F.TABLE} }}}} on {where} failed",
            f"The latest run of table {{{{ $labels.{F.TABLE} }}}} failed at "
            "{{ $value | humanizeTimestamp }} and no successful run followed it (last 24 h).",
        ),
    ]
    db = [
        Rule(
            "DatabaseConnectionsHigh",
            f"({o.preset('metric_gauge', metric=P.DB_CONNECTIONS_METRIC, range='5m')}) "
            f"> {DB_CONNECTIONS_MAX}",
            "5m",
            "warning",
            f"{{{{ $value }}}} active database connections on {where}",
            f"The latest {P.DB_CONNECTIONS_METRIC} value of a writer (host, pid: each worker "
            f"has its own pool) has stayed above {DB_CONNECTIONS_MAX} for 5 minutes (now "
            "{{ $value }}): its pool is close to exhausted.",
        ),
    ]
    return [("alkana-http", "1m", http), ("alkana-etl", "5m", etl), ("alkana-db", "1m", db)]


def rule_expressions(options: RenderOptions | None = None) -> dict[str, str]:
    """Every alert rule's expression by alert name (for checks such as the LogQL grammar)."""
    options = options or RenderOptions()
    return {rule.alert: rule.expr for _, _, rules in _rule_groups(options) for rule in rules}


def _rule_text(rule: Rule, options: RenderOptions) -> str:
    return (
        f"      - alert: {rule.alert}\n"
        f"        expr: |\n"
        f"          {rule.expr}\n"
        f"        for: {rule.duration}\n"
        f"        labels:\n"
        f"          severity: {rule.severity}\n"
        f"          {F.LABEL_APP}: {_q(options.app)}\n"
        f"          {F.LABEL_ENV}: {_q(options.env)}\n"
        f"        annotations:\n"
        f"          summary: {_q(rule.summary)}\n"
        f"          description: {_q(rule.description)}\n"
    )


def rules(options: RenderOptions) -> list[Artifact]:
    """``integrations/loki/rules/alkana.yaml``: Loki ruler alerts in Prometheus rule-file form."""
    out = [
        _header("rules"),
        "#\n# Loki ruler rules (Prometheus rule-file form, LogQL expressions). With the local\n"
        "# stack (integrations/docker-compose.yml) this directory is the rules of tenant 'fake'.\n",
        "groups:\n",
    ]
    for name, interval, group in _rule_groups(options):
        out.append(f"  - name: {name}\n    interval: {interval}\n    rules:\n")
        out.extend(_rule_text(rule, options) for rule in group)
    return [Artifact("integrations/loki/rules/alkana.yaml", "".join(out))]


# -- Alertmanager ---------------------------------------------------------------------------------

#: The labels every alert rule sets and the routes and the inhibition match on.
ALERT_LABELS: Final = ("alertname", "severity", F.LABEL_APP, F.LABEL_ENV)
#: An alert of these labels' values mutes the same alert at a lower severity.
INHIBIT_EQUAL: Final = ("alertname", F.LABEL_APP, F.LABEL_ENV)


def alertmanager(options: RenderOptions) -> list[Artifact]:
    """``integrations/alertmanager/alertmanager.yml``: routes, inhibition, receivers.

    Critical alerts page the on-call (PagerDuty events API v2) and, through ``continue``, also
    reach the team chat; warnings go to the chat; anything else goes by e-mail. Every secret is
    read from a file (Alertmanager expands no ``${VAR}`` in its configuration).
    """
    o = options
    chat_title = (
        '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}'
        "{{ end }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }}, "
        "{{ .CommonLabels.app }} {{ .CommonLabels.env }})"
    )
    chat_text = (
        "{{ range .Alerts }}*{{ .Annotations.summary }}*\n{{ .Annotations.description }}\n{{ end }}"
    )
    text = f"""{_header("alertmanager")}#
# For Alertmanager {ALERTMANAGER_IMAGE.rsplit(":v", 1)[1]} and later (`amtool check-config` it).
# Routing: severity=critical pages the on-call (PagerDuty events API v2) and, with
# `continue`, also reaches the team chat; severity=warning goes to the team chat (a
# Slack-compatible incoming webhook); everything else goes by e-mail. A firing critical alert
# mutes the warning of the same alert name, app and env. Test a label set with
#   amtool config routes test --config.file=alertmanager.yml severity=critical
#
# Secrets are never in this file: Alertmanager does not expand ${{VAR}} here, so each one is
# read from a file under {o.secrets_dir}, readable by Alertmanager's user only: the
# compose file's {ALERTMANAGER_IMAGE} runs as uid 65534 (nobody), so
# `chown 65534 FILE && chmod 0400 FILE` (Debian's package: the prometheus user):
#   {CHAT_WEBHOOK_FILE}       the chat's incoming webhook URL
#   {PAGER_ROUTING_FILE}  the PagerDuty integration's routing key (events API v2)
#   {SMTP_AUTH_FILE}          the SMTP password of {o.smtp_user}
# Alertmanager trims the first two but reads the SMTP password as it is: write it without a
# trailing newline, `printf '%s' "$PASSWORD" > {o.secret(SMTP_AUTH_FILE)}`.
# A missing file is not reported by `amtool check-config`, only when a notification fails.

global:
  # Alerts that arrive without an end time (Loki's ruler always sends one) resolve after this.
  resolve_timeout: 5m

route:
  receiver: {RECEIVER_EMAIL}
  group_by: [alertname, severity]
  # Wait this long for more alerts of a new group, so that they arrive as one notification.
  group_wait: {o.group_wait}
  # A group that changed (new or resolved alerts) is sent again after this long.
  group_interval: {o.group_interval}
  # A group that did not change is sent again after this long while it fires.
  repeat_interval: {o.repeat_interval}
  routes:
    - receiver: {RECEIVER_PAGER}
      matchers:
        - {_q('severity="critical"')}
      # A critical alert also goes on to the chat route below.
      continue: true
    - receiver: {RECEIVER_CHAT}
      matchers:
        - {_q('severity=~"critical|warning"')}

inhibit_rules:
  # While a critical alert fires, the warning of the same alert (name, app, env) is muted.
  - source_matchers:
      - {_q('severity="critical"')}
    target_matchers:
      - {_q('severity="warning"')}
    equal: [{", ".join(INHIBIT_EQUAL)}]

receivers:
  - name: {RECEIVER_PAGER}
    pagerduty_configs:
      # routing_key (events API v2); service_key would mean the v1 API, which ignores url.
      - routing_key_file: {_q(o.secret(PAGER_ROUTING_FILE))}
        url: {_q(o.pager_url)}
        severity: critical
        send_resolved: true
  - name: {RECEIVER_CHAT}
    slack_configs:
      - api_url_file: {_q(o.secret(CHAT_WEBHOOK_FILE))}
        send_resolved: true
        title: {_q(chat_title)}
        text: {_q(chat_text)}
  - name: {RECEIVER_EMAIL}
    email_configs:
      - to: {_q(o.email_to)}
        from: {_q(o.email_from)}
        smarthost: {_q(o.smarthost)}
        auth_username: {_q(o.smtp_user or o.email_from)}
        auth_password_file: {_q(o.secret(SMTP_AUTH_FILE))}
        require_tls: {"true" if o.smtp_require_tls else "false"}
        send_resolved: true
"""
    return [Artifact("integrations/alertmanager/alertmanager.yml", text)]


# -- Grafana --------------------------------------------------------------------------------------

_UNITS: Final = {"ratio": "percentunit", "ms": "ms", "req/s": "reqps", "epoch_s": "dateTimeAsIso"}


def _target(ref: str, expr: str, *, instant: bool = False, legend: str = "") -> dict[str, Any]:
    target: dict[str, Any] = {
        "refId": ref,
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "queryType": "instant" if instant else "range",
    }
    if legend:
        target["legendFormat"] = legend
    return target


def _panel(
    kind: str,
    title: str,
    grid: tuple[int, int, int, int],
    targets: Sequence[dict[str, Any]],
    *,
    description: str = "",
    unit: str | None = None,
    options: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
    transformations: Sequence[dict[str, Any]] = (),
    overrides: Sequence[dict[str, Any]] = (),
    thresholds: Sequence[tuple[float | None, str]] = (),
) -> dict[str, Any]:
    x, y, w, h = grid
    defaults: dict[str, Any] = {}
    if unit:
        defaults["unit"] = unit
    if custom:
        defaults["custom"] = custom
    if thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"value": value, "color": color} for value, color in thresholds],
        }
    panel: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": list(targets),
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "options": options or {},
    }
    if transformations:
        panel["transformations"] = list(transformations)
    return panel


def _rename(field: str, name: str, unit: str | None = None) -> dict[str, Any]:
    properties: list[dict[str, Any]] = [{"id": "displayName", "value": name}]
    if unit:
        properties.append({"id": "unit", "value": unit})
    return {"matcher": {"id": "byName", "options": field}, "properties": properties}


def dashboard_json(options: RenderOptions) -> dict[str, Any]:
    """The Grafana dashboard as a dict; every panel query comes from a preset."""
    o = options
    auto = "$__auto"
    whole = "$__range"
    bars = {"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}}
    route_legend = f"{{{{{F.ROUTE}}}}}"
    table_legend = f"{{{{{F.TABLE}}}}}"
    stat_options = {"reduceOptions": {"calcs": ["lastNotNull"]}, "graphMode": "none"}
    p = P.get
    panels = [
        _panel(
            "stat",
            "Requests / s",
            (0, 0, 6, 4),
            [_target("A", o.preset("request_rate", range="1m", by=""), instant=True)],
            description="http_request events per second over the last minute, all routes",
            unit=_UNITS["req/s"],
            options=stat_options,
        ),
        _panel(
            "stat",
            "5xx ratio (time range)",
            (6, 0, 6, 4),
            [_target("A", o.preset("error_ratio", range=whole), instant=True)],
            description=p("error_ratio").description,
            unit=_UNITS["ratio"],
            options=stat_options,
        ),
        _panel(
            "stat",
            "p95 latency (time range)",
            (12, 0, 6, 4),
            [_target("A", o.preset("latency_p95", range=whole, by=""), instant=True)],
            description="p95 of duration_ms over the time range, all routes (quantile_over_time)",
            unit="ms",
            options=stat_options,
        ),
        _panel(
            "stat",
            f"Slow requests > {P.DEFAULT_SLOW_MS} ms (time range)",
            (18, 0, 6, 4),
            [_target("A", o.preset("slow_requests", range=whole, by=""), instant=True)],
            description="http_request events slower than the threshold in the time range",
            options=stat_options,
        ),
        _panel(
            "timeseries",
            "Request rate by route",
            (0, 4, 12, 8),
            [_target("A", o.preset("request_rate", range=auto), legend=route_legend)],
            description=p("request_rate").description,
            unit=_UNITS["req/s"],
        ),
        _panel(
            "timeseries",
            "5xx ratio by route",
            (12, 4, 12, 8),
            [_target("A", o.preset("error_ratio_by_route", range=auto), legend=route_legend)],
            description=p("error_ratio_by_route").description,
            unit=_UNITS["ratio"],
        ),
        _panel(
            "timeseries",
            "Latency p50 / p95 / p99",
            (0, 12, 12, 8),
            [
                _target(
                    ref, o.preset(name, range=auto, by=""), legend=name.removeprefix("latency_")
                )
                for ref, name in zip("ABC", P.LATENCY_QUANTILES, strict=True)
            ],
            description="Loki's quantile_over_time of duration_ms over all routes.",
            unit="ms",
        ),
        _panel(
            "timeseries",
            "p95 latency by route",
            (12, 12, 12, 8),
            [_target("A", o.preset("latency_p95", range=auto), legend=route_legend)],
            description=p("latency_p95").description,
            unit="ms",
        ),
        _panel(
            "timeseries",
            "5xx errors by route",
            (0, 20, 8, 8),
            [_target("A", o.preset("errors_by_route", range=auto), legend=route_legend)],
            description=p("errors_by_route").description,
            custom=bars,
        ),
        _panel(
            "timeseries",
            f"Slow requests by route (> {P.DEFAULT_SLOW_MS} ms)",
            (8, 20, 8, 8),
            [_target("A", o.preset("slow_requests", range=auto), legend=route_legend)],
            description=p("slow_requests").description,
            custom=bars,
        ),
        _panel(
            "table",
            "Top exceptions (time range)",
            (16, 20, 8, 8),
            [_target("A", o.preset("top_exceptions", range=whole), instant=True)],
            description=p("top_exceptions").description,
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"excludeByName": {"Time": True}}},
                {"id": "sortBy", "options": {"sort": [{"field": "Value", "desc": True}]}},
            ],
            overrides=[_rename("Value", "lines")],
        ),
        _panel(
            "logs",
            "Error logs",
            (0, 28, 24, 10),
            [_target("A", o.preset("error_logs"))],
            description=p("error_logs").description,
            options={"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending"},
        ),
        _panel(
            "table",
            "ETL status and freshness by table",
            (0, 38, 14, 8),
            [
                _target(
                    "A",
                    f"sum by ({F.TABLE}) ({o.preset('etl_runs', range=whole)})",
                    instant=True,
                ),
                _target("B", o.preset("etl_failures", range=whole), instant=True),
                # Grafana's time units take milliseconds.
                _target("C", f"({o.preset('etl_last_success')}) * 1000", instant=True),
                _target("D", f"({o.preset('etl_stale')}) * 0 + 1", instant=True),
            ],
            description=(
                "Runs and failures in the time range; the last success within "
                f"{P.DEFAULT_ETL_LOOKBACK}; stale = 1 when a table that ran in the last "
                f"{P.DEFAULT_ETL_LOOKBACK} has had no successful run for "
                f"{P.DEFAULT_STALE_AFTER}."
            ),
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"excludeByName": {"Time": True}}},
            ],
            overrides=[
                _rename("Value #A", "runs"),
                _rename("Value #B", "failures"),
                _rename("Value #C", "last success", "dateTimeFromNow"),
                _rename("Value #D", "stale"),
            ],
        ),
        _panel(
            "timeseries",
            "ETL duration p95 by table",
            (14, 38, 10, 8),
            [_target("A", o.preset("etl_duration_p95", range=auto), legend=table_legend)],
            description=p("etl_duration_p95").description,
            unit="ms",
        ),
        _panel(
            "timeseries",
            "Log volume by level",
            (0, 46, 12, 8),
            [
                _target(
                    "A",
                    o.preset("log_volume_by_level", range=auto),
                    legend=f"{{{{{F.LEVEL}}}}}",
                )
            ],
            description=p("log_volume_by_level").description,
            custom=bars,
        ),
        _panel(
            "timeseries",
            f"Database connections ({P.DB_CONNECTIONS_METRIC})",
            (12, 46, 12, 8),
            [
                _target(
                    "A",
                    o.preset("metric_gauge", metric=P.DB_CONNECTIONS_METRIC, range=auto),
                    legend=f"{{{{{F.METRIC}}}}}",
                )
            ],
            description=(
                f"The latest {P.DB_CONNECTIONS_METRIC} value of the metric events; the line is "
                f"the DatabaseConnectionsHigh threshold ({DB_CONNECTIONS_MAX})."
            ),
            custom={"thresholdsStyle": {"mode": "line"}},
            thresholds=[(None, "green"), (DB_CONNECTIONS_MAX, "red")],
        ),
    ]
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    uid = re.sub(r"[^A-Za-z0-9_-]+", "-", f"alkana-{o.app}-{o.env}")[:40].strip("-")
    return {
        "uid": uid,
        "title": f"alkana: {o.app} ({o.env})",
        "description": (
            "Generated by `alkana-logging render dashboard` from the package's LogQL presets; "
            "re-render instead of editing."
        ),
        "tags": ["alkana-logging", "loki"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboard(options: RenderOptions) -> list[Artifact]:
    """The dashboard JSON and Grafana's datasource and dashboard provisioning files."""
    board = json.dumps(dashboard_json(options), indent=2, ensure_ascii=False) + "\n"
    datasource = f"""{_header("dashboard")}
apiVersion: 1

datasources:
  - name: Loki
    type: loki
    # The dashboard's panels refer to this uid.
    uid: {DATASOURCE_UID}
    access: proxy
    url: {_q(options.loki_url)}
    isDefault: true
    editable: false
"""
    provider = f"""{_header("dashboard")}
apiVersion: 1

providers:
  - name: alkana-logging
    orgId: 1
    folder: alkana-logging
    type: file
    disableDeletion: false
    allowUiUpdates: false
    updateIntervalSeconds: 30
    options:
      # integrations/grafana/dashboards is mounted here by integrations/docker-compose.yml.
      path: /var/lib/grafana/dashboards
"""
    return [
        Artifact("integrations/grafana/dashboards/alkana.json", board),
        Artifact("integrations/grafana/provisioning/datasources/loki.yaml", datasource),
        Artifact("integrations/grafana/provisioning/dashboards/alkana.yaml", provider),
    ]


# -- the local stack ------------------------------------------------------------------------------


_APP_HEALTH_PROBE: Final = (
    "import sys, urllib.request; "
    f"sys.exit(urllib.request.urlopen('http://127.0.0.1:{APP_PORT}/health', timeout=3)"
    ".status != 200)"
)


def _q_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_q(value) for value in values) + "]"


def compose(options: RenderOptions) -> list[Artifact]:
    """``integrations/docker-compose.yml`` and the single-binary Loki config it runs."""
    loki = f"""{_header("compose")}#
# A minimal single-binary Loki for trying things out: filesystem storage, one replica, no
# authentication (tenant 'fake'), and the ruler reading the rules in /loki/rules/<tenant>/
# (integrations/loki/rules is mounted there). Not for production.

auth_enabled: false

server:
  http_listen_port: 3100
  grpc_listen_port: 9096
  log_level: info

common:
  instance_addr: 127.0.0.1
  path_prefix: /loki
  storage:
    filesystem:
      chunks_directory: /loki/chunks
      rules_directory: /loki/rules
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory

schema_config:
  configs:
    - from: 2024-01-01
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h

limits_config:
  # The shippers drop longer lines before they get here (their drop counters show them).
  max_line_size: {MAX_LINE_SIZE}

ruler:
  storage:
    type: local
    local:
      directory: /loki/rules
  rule_path: /loki/rules-temp
  evaluation_interval: 1m
  enable_api: true
  # Firing alerts go to the stack's Alertmanager (integrations/alertmanager/alertmanager.yml),
  # and show at /prometheus/api/v1/alerts.
  alertmanager_url: {_q(options.alertmanager_url)}
  enable_alertmanager_v2: true

analytics:
  reporting_enabled: false
"""
    text = f"""{_header("compose")}#
# A local Loki + Alloy + Alertmanager + Grafana, and the example backend, for trying the
# shipped configs: run
#   docker compose -f integrations/docker-compose.yml up -d
# from the repository root; the backend (http://127.0.0.1:8000/health/detailed) and whatever
# else writes its *.log files to logs/ there (or to ALKANA_LOG_DIR) is shipped; then open
# http://127.0.0.1:3000 (anonymous admin: for a local trial only). Ports listen on 127.0.0.1.

name: alkana-logging

services:
  loki:
    image: {LOKI_IMAGE}
    command: ["-config.file=/etc/loki/loki-local.yaml"]
    ports:
      - "127.0.0.1:3100:3100"
    volumes:
      - ./loki/loki-local.yaml:/etc/loki/loki-local.yaml:ro
      - ./loki/rules:/loki/rules/fake:ro
      - loki-data:/loki
    depends_on:
      - alertmanager

  alloy:
    image: {ALLOY_IMAGE}
    command:
      - run
      - --server.http.listen-addr=0.0.0.0:12345
      - --storage.path=/var/lib/alloy/data
      - /etc/alloy/config.alloy
    ports:
      - "127.0.0.1:12345:12345"
    volumes:
      - ./alloy/config.alloy:/etc/alloy/config.alloy:ro
      - ${{ALKANA_LOG_DIR:-../logs}}:{options.log_dir}:ro
      - alloy-data:/var/lib/alloy/data
    depends_on:
      - loki

  alertmanager:
    image: {ALERTMANAGER_IMAGE}
    command:
      - --config.file=/etc/alertmanager/alertmanager.yml
      - --storage.path=/alertmanager
    ports:
      - "127.0.0.1:9093:9093"
    volumes:
      - ./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro
      # The secret files (see alertmanager.yml); kept out of the repository.
      - ${{ALKANA_ALERTMANAGER_SECRETS:-./alertmanager/secrets}}:{options.secrets_dir}:ro
      - alertmanager-data:/alertmanager

  # The example backend (integrations/examples/backend.py), writing the directory Alloy reads.
  app:
    image: {APP_IMAGE}
    working_dir: /src
    command:
      - sh
      - -c
      - >-
        pip install --no-cache-dir --quiet '/src[all]' fastapi uvicorn &&
        exec python -m uvicorn --app-dir integrations/examples backend:app
        --host 0.0.0.0 --port {APP_PORT}
    environment:
      APP_NAME: {_q(options.app)}
      APP_ENV: {_q(options.env)}
      LOG_FILE: {_q(str(PurePosixPath(options.log_dir) / "app.log"))}
    ports:
      - "127.0.0.1:{APP_PORT}:{APP_PORT}"
    volumes:
      - ..:/src:ro
      - ${{ALKANA_LOG_DIR:-../logs}}:{options.log_dir}
    healthcheck:
      # /health is cheap (no database, no file read): it says the process serves.
      test: {_q_list(["CMD", "python", "-c", _APP_HEALTH_PROBE])}
      interval: 10s
      timeout: 5s
      retries: 3
      start_period: 60s

  grafana:
    image: {GRAFANA_IMAGE}
    ports:
      - "127.0.0.1:3000:3000"
    environment:
      GF_AUTH_ANONYMOUS_ENABLED: "true"
      GF_AUTH_ANONYMOUS_ORG_ROLE: "Admin"
      GF_AUTH_DISABLE_LOGIN_FORM: "true"
    volumes:
      - ./grafana/provisioning:/etc/grafana/provisioning:ro
      - ./grafana/dashboards:/var/lib/grafana/dashboards:ro
    depends_on:
      - loki

volumes:
  loki-data: {{}}
  alloy-data: {{}}
  alertmanager-data: {{}}
"""
    return [
        Artifact("integrations/docker-compose.yml", text),
        Artifact("integrations/loki/loki-local.yaml", loki),
    ]


_RENDERERS: Final[dict[str, Callable[[RenderOptions], list[Artifact]]]] = {
    "promtail": promtail,
    "alloy": alloy,
    "logrotate": logrotate,
    "rules": rules,
    "alertmanager": alertmanager,
    "dashboard": dashboard,
    "compose": compose,
}


def render(target: str, options: RenderOptions | None = None) -> list[Artifact]:
    """The artifacts of ``target`` (one of :data:`TARGETS`, or ``all``).

    Raises:
        RenderError: ``target`` is not known.
    """
    options = options or RenderOptions()
    if target == "all":
        return [artifact for name in TARGETS for artifact in _RENDERERS[name](options)]
    try:
        return _RENDERERS[target](options)
    except KeyError:
        raise RenderError(
            f"target: got {target!r}; expected one of {', '.join((*TARGETS, 'all'))}"
        ) from None


def write(artifacts: Iterable[Artifact], root: str | Path) -> list[Path]:
    """Write ``artifacts`` under ``root`` at their paths (directories created); return them."""
    written = []
    for artifact in artifacts:
        path = Path(root) / artifact.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(artifact.text, encoding="utf-8")
        written.append(path)
    return written
