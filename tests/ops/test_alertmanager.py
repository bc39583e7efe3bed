"""The rendered Alertmanager config, run by the real Alertmanager (Debian's
``prometheus-alertmanager``) with its receivers pointed at local sinks: an HTTP server standing in
for the chat webhook and PagerDuty's events API, and an SMTP server (aiosmtpd) for e-mail.

Alerts are posted to Alertmanager's API with the labels each shipped rule sets, as Loki's ruler
posts them; the tests read what each sink received.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alkana_logging.ops import configs as R
from alkana_logging.ops.configs import alertmanager as AM
from alkana_logging.ops.configs import options as Opt

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "integrations" / "alertmanager" / "alertmanager.yml"
RULES = ROOT / "integrations" / "loki" / "rules" / "alkana.yaml"

CHAT_SECRET_PATH = "/services/T0001/B0001/chat-secret-token"
PAGER_KEY = "routing-key-0123456789abcdef"
# A space and no trailing newline: Alertmanager reads this file as it is.
SMTP_PASSWORD = "s3cret smtp password"
SMTP_USER = "alertmanager@alkana.test"
EMAIL_TO = "team@alkana.test"

EXPECTED_RECEIVERS = {
    "critical": {AM.RECEIVER_PAGER, AM.RECEIVER_CHAT},
    "warning": {AM.RECEIVER_CHAT},
}


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        f"{names[0]} is not installed: the config is checked with the real binary "
        "(apt install prometheus-alertmanager; scripts/bootstrap.sh does it)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(
    condition: Callable[[], bool], timeout: float, what: str, log: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log()}")
        time.sleep(0.05)


# -- the shipped rules ----------------------------------------------------------------------------


def _shipped_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _rule_labels(rule: dict[str, Any]) -> dict[str, str]:
    """The labels Loki's ruler gives the rule's alert: alertname, the rule's labels, and the
    series' own labels (a table, a route) where the expression keeps them."""
    labels = {"alertname": rule["alert"], **rule["labels"]}
    expr = rule["expr"]
    if "by (table)" in expr:
        labels["table"] = "raw_mb51"
    if "by (route)" in expr:
        labels["route"] = "/items/{item_id}"
    if "by (metric)" in expr:
        labels["metric"] = "db_connections_active"
    return labels


# -- the sinks ------------------------------------------------------------------------------------


class HttpSink:
    """Records every POST (path and JSON body); answers as the chat webhook and PagerDuty do."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink._lock:
                    sink.requests.append((self.path, json.loads(body)))
                if self.path.startswith("/pagerduty"):
                    reply, status = b'{"status":"success","message":"Event processed"}', 202
                else:
                    reply, status = b"ok", 200
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def posts(self, prefix: str) -> list[Any]:
        with self._lock:
            return [body for path, body in self.requests if path.startswith(prefix)]

    def paths(self) -> list[str]:
        with self._lock:
            return [path for path, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """An SMTP server with AUTH (without TLS: Go's client sends PLAIN to 127.0.0.1 only)."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.logins: list[tuple[bytes, bytes]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                with sink._lock:
                    sink.messages.append(message)  # type: ignore[arg-type]
                return "250 OK"

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
        ) -> AuthResult:
            assert isinstance(auth_data, LoginPassword)
            with sink._lock:
                sink.logins.append((auth_data.login, auth_data.password))
            ok = auth_data.login == SMTP_USER.encode() and auth_data.password == (
                SMTP_PASSWORD.encode()
            )
            return AuthResult(success=ok)

        self.port = _free_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticate,
            auth_require_tls=False,
            # aiosmtpd's LOGIN challenges ("User Name") are not the "Username:" that mail servers
            # send and Alertmanager's LOGIN expects; PLAIN is what it then uses.
            auth_exclude_mechanism=["LOGIN"],
        )
        self.controller.start()

    def received(self) -> list[email.message.EmailMessage]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.controller.stop()


# -- a real Alertmanager --------------------------------------------------------------------------


class Alertmanager:
    def __init__(self, process: subprocess.Popen[bytes], url: str, output: Path) -> None:
        self.process = process
        self.url = url
        self.output = output

    def post(self, *alerts: dict[str, Any]) -> None:
        response = requests.post(f"{self.url}/api/v2/alerts", json=list(alerts), timeout=10)
        assert response.status_code == 200, response.text

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def _alert(
    labels: dict[str, str],
    *,
    resolved: bool = False,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    # As Loki's ruler: a firing alert ends a few evaluations ahead and is re-sent; a resolved
    # one is sent once more with its end in the past.
    ends = now - timedelta(seconds=1) if resolved else now + timedelta(minutes=10)
    return {
        "labels": labels,
        "annotations": annotations
        or {"summary": f"summary of {labels['alertname']}", "description": "what happened"},
        "startsAt": (now - timedelta(minutes=5)).isoformat(),
        "endsAt": ends.isoformat(),
        "generatorURL": "http://loki:3100/",
    }


@pytest.fixture
def sinks() -> Iterator[tuple[HttpSink, SmtpSink]]:
    http, smtp = HttpSink(), SmtpSink()
    try:
        yield http, smtp
    finally:
        http.close()
        smtp.close()


@contextlib.contextmanager
def _alertmanager(
    tmp_path: Path,
    http: HttpSink,
    smtp: SmtpSink,
    *,
    smtp_password_file: str = SMTP_PASSWORD,
    email_from: str = SMTP_USER,
    smtp_user: str | None = None,
) -> Iterator[Alertmanager]:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    # Trailing newlines, as `echo` writes them: Alertmanager trims these two files.
    (secrets / AM.CHAT_WEBHOOK_FILE).write_text(
        f"http://127.0.0.1:{http.port}{CHAT_SECRET_PATH}\n", encoding="utf-8"
    )
    (secrets / AM.PAGER_ROUTING_FILE).write_text(PAGER_KEY + "\n", encoding="utf-8")
    (secrets / AM.SMTP_AUTH_FILE).write_text(smtp_password_file, encoding="utf-8")
    options = R.RenderOptions(
        pager_url=f"http://127.0.0.1:{http.port}/pagerduty/v2/enqueue",
        email_to=EMAIL_TO,
        email_from=email_from,
        smtp_user=smtp_user,
        smarthost=f"127.0.0.1:{smtp.port}",
        smtp_require_tls=False,
        secrets_dir=str(secrets),
        group_wait="1s",
        group_interval="2s",
        repeat_interval="1h",
    )
    config = tmp_path / "alertmanager.yml"
    (artifact,) = R.render("alertmanager", options)
    config.write_text(artifact.text, encoding="utf-8")
    assert str(secrets) in artifact.text
    for secret in (CHAT_SECRET_PATH, PAGER_KEY, SMTP_PASSWORD):
        assert secret not in artifact.text
    port = _free_port()
    output = tmp_path / "alertmanager.out"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [
                "timeout",
                "120",
                _binary("prometheus-alertmanager", "alertmanager"),
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    manager = Alertmanager(process, f"http://127.0.0.1:{port}", output)
    try:

        def ready() -> bool:
            assert process.poll() is None, manager.log()
            try:
                return requests.get(f"{manager.url}/-/ready", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        _wait(ready, 30, "Alertmanager to be ready")
        yield manager
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# -- the shipped file -----------------------------------------------------------------------------


@pytest.mark.slow
def test_amtool_check_config_accepts_the_shipped_file() -> None:
    done = subprocess.run(
        [_binary("amtool"), "check-config", str(SHIPPED)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert "3 receivers" in done.stdout
    assert "1 inhibit rules" in done.stdout


@pytest.mark.parametrize("rule", _shipped_rules(), ids=[rule["alert"] for rule in _shipped_rules()])
def test_amtool_routes_every_shipped_rule_to_its_receivers(rule: dict[str, Any]) -> None:
    labels = _rule_labels(rule)
    expected = EXPECTED_RECEIVERS[labels["severity"]]
    done = subprocess.run(
        [
            _binary("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={SHIPPED}",
            *(f"{name}={value}" for name, value in labels.items()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(done.stdout.strip().split(",")) == expected


def test_amtool_routes_other_severities_to_email() -> None:
    for labels in (["severity=info"], ["alertname=Watchdog"]):
        done = subprocess.run(
            [_binary("amtool"), "config", "routes", "test", f"--config.file={SHIPPED}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (done.returncode, done.stdout.strip()) == (0, AM.RECEIVER_EMAIL)


def test_every_shipped_rule_sets_the_labels_the_routes_and_the_inhibition_match_on() -> None:
    config = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    assert config["route"]["group_by"] == ["alertname", "severity"]
    (inhibit,) = config["inhibit_rules"]
    for rule in _shipped_rules():
        labels = _rule_labels(rule)
        assert set(AM.ALERT_LABELS) <= set(labels), rule["alert"]
        assert set(inhibit["equal"]) <= set(labels), rule["alert"]
        assert labels["severity"] in EXPECTED_RECEIVERS


def test_the_shipped_file_holds_no_secret_only_file_paths() -> None:
    config = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    receivers = {r["name"]: r for r in config["receivers"]}
    (pager,) = receivers[AM.RECEIVER_PAGER]["pagerduty_configs"]
    (chat,) = receivers[AM.RECEIVER_CHAT]["slack_configs"]
    (mail,) = receivers[AM.RECEIVER_EMAIL]["email_configs"]
    assert pager["routing_key_file"].startswith(Opt.DEFAULT_SECRETS_DIR + "/")
    assert "service_key" not in pager  # events API v1
    assert chat["api_url_file"].startswith(Opt.DEFAULT_SECRETS_DIR + "/")
    assert mail["auth_password_file"].startswith(Opt.DEFAULT_SECRETS_DIR + "/")
    for forbidden in ("routing_key", "service_key", "api_url", "auth_password", "auth_secret"):
        for receiver in (pager, chat, mail):
            assert forbidden not in receiver
    assert "smtp_auth_password" not in config["global"]
    assert "slack_api_url" not in config["global"]


def test_the_loki_ruler_sends_to_the_stacks_alertmanager() -> None:
    loki = yaml.safe_load((ROOT / "integrations/loki/loki-local.yaml").read_text())
    assert loki["ruler"]["alertmanager_url"] == "http://alertmanager:9093"
    assert loki["ruler"]["enable_alertmanager_v2"] is True
    compose = yaml.safe_load((ROOT / "integrations/docker-compose.yml").read_text())
    manager = compose["services"]["alertmanager"]
    assert "127.0.0.1:9093:9093" in manager["ports"]
    assert (
        "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"
        in (manager["volumes"])
    )
    assert any(v.endswith(f":{Opt.DEFAULT_SECRETS_DIR}:ro") for v in manager["volumes"])


# -- the real Alertmanager ------------------------------------------------------------------------


@pytest.mark.slow
def test_every_shipped_alert_reaches_its_receivers_with_secrets_from_the_files(
    tmp_path: Path, sinks: tuple[HttpSink, SmtpSink]
) -> None:
    http, smtp = sinks
    rules = _shipped_rules()
    other = {"alertname": "NightlyBackupLate", "severity": "info", "app": "alkana-dashboard"}
    with _alertmanager(tmp_path, http, smtp) as manager:
        manager.post(*(_alert(_rule_labels(rule)) for rule in rules), _alert(other))
        criticals = [r for r in rules if r["labels"]["severity"] == "critical"]
        _wait(
            lambda: (
                len(http.posts("/pagerduty")) >= len(criticals)
                and len(http.posts(CHAT_SECRET_PATH)) >= len(rules)
                and len(smtp.received()) >= 1
            ),
            30,
            "every receiver to be notified",
            manager.log,
        )
        time.sleep(1.5)  # nothing more arrives: each alert was sent once, where it belongs
        log = manager.log()

    got: dict[str, set[str]] = {}
    for event in http.posts("/pagerduty"):
        # The routing key was read from its file (and trimmed), and events API v2 was used.
        assert event["routing_key"] == PAGER_KEY
        assert event["event_action"] == "trigger"
        assert event["payload"]["severity"] == "critical"
        got.setdefault(event["payload"]["summary"].split("[FIRING:1] ")[1].split()[0], set()).add(
            AM.RECEIVER_PAGER
        )
    # The webhook URL was read from its file: the requests went to its secret path.
    assert set(http.paths()) <= {"/pagerduty/v2/enqueue", CHAT_SECRET_PATH}
    for message in http.posts(CHAT_SECRET_PATH):
        (attachment,) = message["attachments"]
        name = attachment["title"].split("] ", 1)[1].split(" ", 1)[0]
        assert attachment["title"].startswith("[FIRING:1] ")
        assert f"*summary of {name}*" in attachment["text"]
        got.setdefault(name, set()).add(AM.RECEIVER_CHAT)
    (mail,) = smtp.received()
    assert mail["To"] == EMAIL_TO
    assert "NightlyBackupLate" in mail["Subject"]
    # The SMTP password was read from its file, as it is.
    assert smtp.logins == [(SMTP_USER.encode(), SMTP_PASSWORD.encode())]
    got.setdefault("NightlyBackupLate", set()).add(AM.RECEIVER_EMAIL)

    expected = {rule["alert"]: EXPECTED_RECEIVERS[rule["labels"]["severity"]] for rule in rules}
    expected["NightlyBackupLate"] = {AM.RECEIVER_EMAIL}
    assert got == expected
    assert len(http.posts(CHAT_SECRET_PATH)) == len(rules)
    assert "err=" not in log, log


@pytest.mark.slow
def test_a_firing_critical_alert_mutes_the_warning_of_the_same_name_and_app(
    tmp_path: Path, sinks: tuple[HttpSink, SmtpSink]
) -> None:
    http, smtp = sinks
    base = {"alertname": "HighErrorRate", "env": "production"}
    with _alertmanager(tmp_path, http, smtp) as manager:
        # The critical alert fires first (Alertmanager's inhibitor and dispatcher read the
        # alerts concurrently: posted in one batch, a warning may be flushed before the
        # inhibitor has seen the critical one).
        manager.post(_alert({**base, "severity": "critical", "app": "alkana-dashboard"}))
        _wait(lambda: len(http.posts(CHAT_SECRET_PATH)) >= 1, 30, "the critical notification")
        manager.post(
            _alert({**base, "severity": "warning", "app": "alkana-dashboard"}),
            _alert({**base, "severity": "warning", "app": "other-app"}),
        )
        _wait(lambda: len(http.posts(CHAT_SECRET_PATH)) >= 2, 30, "two chat notifications")
        time.sleep(1.5)
        alerts = requests.get(f"{manager.url}/api/v2/alerts", timeout=10).json()

    chat = http.posts(CHAT_SECRET_PATH)
    assert len(chat) == 2
    titles = sorted(message["attachments"][0]["title"] for message in chat)
    assert titles == [
        "[FIRING:1] HighErrorRate (critical, alkana-dashboard production)",
        # One warning in the warning group: the other app's; this app's is muted.
        "[FIRING:1] HighErrorRate (warning, other-app production)",
    ]
    assert len(http.posts("/pagerduty")) == 1
    inhibited = [
        a["labels"]["app"] for a in alerts if a["status"]["inhibitedBy"] and a["status"]["state"]
    ]
    assert inhibited == ["alkana-dashboard"]


@pytest.mark.slow
def test_a_resolved_alert_is_sent_as_resolved_to_every_receiver(
    tmp_path: Path, sinks: tuple[HttpSink, SmtpSink]
) -> None:
    http, smtp = sinks
    critical = {"alertname": "ETLStale", "severity": "critical", "app": "a", "table": "t"}
    other = {"alertname": "NightlyBackupLate", "severity": "info", "app": "a"}
    with _alertmanager(tmp_path, http, smtp) as manager:
        manager.post(_alert(critical), _alert(other))
        _wait(
            lambda: (
                len(http.posts("/pagerduty")) == 1
                and len(http.posts(CHAT_SECRET_PATH)) == 1
                and len(smtp.received()) == 1
            ),
            30,
            "the firing notifications",
        )
        manager.post(_alert(critical, resolved=True), _alert(other, resolved=True))
        _wait(
            lambda: (
                len(http.posts("/pagerduty")) == 2
                and len(http.posts(CHAT_SECRET_PATH)) == 2
                and len(smtp.received()) == 2
            ),
            30,
            "the resolved notifications",
        )

    pager = http.posts("/pagerduty")
    assert [event["event_action"] for event in pager] == ["trigger", "resolve"]
    assert pager[0]["dedup_key"] == pager[1]["dedup_key"]
    chat = http.posts(CHAT_SECRET_PATH)
    assert chat[1]["attachments"][0]["title"].startswith("[RESOLVED] ETLStale")
    mails = smtp.received()
    assert "[FIRING:1]" in mails[0]["Subject"]
    assert "[RESOLVED]" in mails[1]["Subject"]


def test_render_alertmanager_takes_the_receivers_addresses_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alkana_logging.ops.cli import main

    argv = [
        "render",
        "alertmanager",
        "--email-to=ops@alkana.test",
        "--email-from=am@alkana.test",
        "--smarthost=mail.alkana.test:25",
        "--smtp-no-tls",
        "--pager-url=https://pager.alkana.test/v2/enqueue",
        "--secrets-dir=/run/secrets/alertmanager",
        "--group-wait=10s",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    config = yaml.safe_load(text)
    receivers = {r["name"]: r for r in config["receivers"]}
    (mail,) = receivers[AM.RECEIVER_EMAIL]["email_configs"]
    assert (mail["to"], mail["from"], mail["smarthost"], mail["require_tls"]) == (
        "ops@alkana.test",
        "am@alkana.test",
        "mail.alkana.test:25",
        False,
    )
    assert mail["auth_password_file"] == "/run/secrets/alertmanager/smtp_password"
    (pager,) = receivers[AM.RECEIVER_PAGER]["pagerduty_configs"]
    assert pager["url"] == "https://pager.alkana.test/v2/enqueue"
    assert config["route"]["group_wait"] == "10s"
    out = tmp_path / "alertmanager.yml"
    out.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [_binary("amtool"), "check-config", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert main([*argv[:2], "--email-to=not-an-address"]) == 2
    assert "--email-to: got 'not-an-address'; expected an e-mail address" in (
        capsys.readouterr().err
    )


def test_the_smtp_password_file_is_read_as_it_is_newline_included(
    tmp_path: Path, sinks: tuple[HttpSink, SmtpSink]
) -> None:
    # Why the README says `printf '%s'`, not `echo`: the newline becomes part of the password.
    http, smtp = sinks
    other = {"alertname": "NightlyBackupLate", "severity": "info", "app": "a"}
    with _alertmanager(tmp_path, http, smtp, smtp_password_file=SMTP_PASSWORD + "\n") as manager:
        manager.post(_alert(other))
        _wait(lambda: len(smtp.logins) >= 1, 30, "a login attempt", manager.log)
    assert smtp.logins[0] == (SMTP_USER.encode(), SMTP_PASSWORD.encode() + b"\n")
    assert smtp.received() == []


# -- the render options' validation, against the real amtool ---------------------------------------


def _amtool_accepts(tmp_path: Path, text: str) -> bool:
    config = tmp_path / "check.yml"
    config.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [_binary("amtool"), "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0


@pytest.mark.parametrize("field", ["group_wait", "group_interval", "repeat_interval"])
@pytest.mark.parametrize(
    "value", ["30s", "5m0s", "1h30m", "1d12h", "250ms", "0s", "0", "1h1h", "1m1h", "30m1h", "1.5h"]
)
def test_durations_are_accepted_exactly_when_alertmanager_accepts_them(
    tmp_path: Path, field: str, value: str
) -> None:
    (default,) = R.render("alertmanager", R.RenderOptions())
    default_value = getattr(R.RenderOptions(), field)
    line = f"  {field}: {default_value}\n"
    assert line in default.text
    amtool = _amtool_accepts(tmp_path, default.text.replace(line, f'  {field}: "{value}"\n'))
    if amtool:
        assert getattr(R.RenderOptions(**{field: value}), field) == value
    else:
        with pytest.raises(R.RenderError, match=f"--{field.replace('_', '-')}: got {value!r}"):
            R.RenderOptions(**{field: value})


def test_every_option_refuses_a_trailing_newline() -> None:
    for field in (
        "alertmanager_url",
        "pager_url",
        "email_to",
        "email_from",
        "smarthost",
        "group_wait",
        "user",
        "group",
        "loki_url",
        "smtp_user",
    ):
        value = getattr(R.RenderOptions(), field) or "alertmanager@example.com"
        with pytest.raises(R.RenderError, match=f"--{field.replace('_', '-')}: got"):
            R.RenderOptions(**{field: value + "\n"})


@pytest.mark.parametrize(
    "address",
    [
        *("a;b@x.test", "x:a@b.test;", "a(comment)@b.test", "Team <a@b.test>", "a@b.test:25"),
        *("a@-b.test", "a@b..test", r"a\@b@c.test", "{{ .x }}@b.test", "a@b.test,c@d.test"),
        "@b.test",
    ],
)
def test_an_email_address_is_one_addr_spec(address: str) -> None:
    with pytest.raises(R.RenderError, match="expected an e-mail address"):
        R.RenderOptions(email_to=address)
    with pytest.raises(R.RenderError, match="expected an e-mail address"):
        R.RenderOptions(email_from=address)


def test_plain_addresses_are_accepted() -> None:
    for address in ("oncall+alerts@example.com", "o'brien@mail.example.co.uk", "a.b-c@x.test"):
        assert R.RenderOptions(email_to=address).email_to == address


@pytest.mark.parametrize(
    "smarthost",
    [
        *("smtp.example.com:0", "smtp.example.com:65536", "smtp.example.com:99999", "-:25"),
        *(":25", "smtp_.example.com:25", "[::1x]:25", "smtp.example.com", "a..b:25"),
    ],
)
def test_the_smarthost_is_a_valid_host_and_port(smarthost: str) -> None:
    with pytest.raises(R.RenderError, match="--smarthost: got"):
        R.RenderOptions(smarthost=smarthost)


def test_valid_smarthosts_are_accepted() -> None:
    for smarthost in ("smtp.example.com:587", "10.0.0.1:25", "[::1]:465", "mail:65535"):
        assert R.RenderOptions(smarthost=smarthost).smarthost == smarthost


@pytest.mark.parametrize("field", ["alertmanager_url", "pager_url"])
@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("https://user:s3cret@events.pagerduty.com/v2/enqueue", "s3cret"),
        ("https://events.pagerduty.com/v2/enqueue?routing_key=R0UT1NG", "R0UT1NG"),
        ("https://tok3n@host.test/x", "tok3n"),
    ],
)
def test_urls_with_credentials_are_refused_without_echoing_them(
    field: str, url: str, secret: str
) -> None:
    with pytest.raises(R.RenderError, match="a secret would be written into the file") as caught:
        R.RenderOptions(**{field: url})
    assert secret not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["http://x/#frag", "http://-bad-.test/", "http://host.test:0/", "http://h:99999/"]
)
def test_urls_need_a_valid_host_and_port_and_no_fragment(url: str) -> None:
    with pytest.raises(R.RenderError, match="--pager-url: got"):
        R.RenderOptions(pager_url=url)


@pytest.mark.parametrize("field", ["app", "env", "job", "host"])
@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u0085", "\x9b", "\x7f", "\n"])
def test_label_values_refuse_line_separators_and_c1_controls(field: str, char: str) -> None:
    with pytest.raises(R.RenderError, match=f"--{field}: got"):
        R.RenderOptions(**{field: f"a{char}b"})


@pytest.mark.parametrize("field", ["app", "env"])
@pytest.mark.parametrize("value", ["x{{ .Foo }}", "{{", "a}}b"])
def test_app_and_env_refuse_template_delimiters(field: str, value: str) -> None:
    with pytest.raises(R.RenderError, match="template delimiters"):
        R.RenderOptions(**{field: value})


def test_the_header_lists_the_alertmanager_options() -> None:
    (artifact,) = R.render("alertmanager", R.RenderOptions())
    header = "".join(
        line for line in artifact.text.splitlines(keepends=True)[:6] if line.startswith("#")
    )
    for option in AM.ALERTMANAGER_OPTIONS:
        assert option in header
    assert "uid 65534" in artifact.text


def test_the_smtp_user_is_its_own_option(
    tmp_path: Path, sinks: tuple[HttpSink, SmtpSink], capsys: pytest.CaptureFixture[str]
) -> None:
    from alkana_logging.ops.cli import main

    assert R.RenderOptions().smtp_user == Opt.DEFAULT_EMAIL_FROM  # the from address by default
    assert main(["render", "alertmanager", "--smtp-user=relay-user"]) == 0
    (mail,) = {r["name"]: r for r in yaml.safe_load(capsys.readouterr().out)["receivers"]}[
        AM.RECEIVER_EMAIL
    ]["email_configs"]
    assert (mail["auth_username"], mail["from"]) == ("relay-user", Opt.DEFAULT_EMAIL_FROM)
    # The real Alertmanager logs in as the user, and sends from the other address.
    http, smtp = sinks
    sender = "noreply@alkana.test"
    other = {"alertname": "NightlyBackupLate", "severity": "info", "app": "a"}
    with _alertmanager(tmp_path, http, smtp, email_from=sender, smtp_user=SMTP_USER) as manager:
        manager.post(_alert(other))
        _wait(lambda: len(smtp.received()) >= 1, 30, "an e-mail", manager.log)
    assert smtp.logins[0][0] == SMTP_USER.encode()
    assert smtp.received()[0]["From"] == sender
