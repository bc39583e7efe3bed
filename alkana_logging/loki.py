"""Direct push to Loki: a sink that batches, compresses, retries and never hurts the caller.

For hosts with no agent (an ETL job on a laptop, a short-lived container). The caller's thread
only appends the line to a bounded in-memory buffer; one background thread per process takes
batches from it (by size, or when the oldest line has waited long enough), sends them as gzip
JSON to Loki's push API and retries with exponential backoff and jitter while Loki is down or
asks for patience (429, 5xx, ``Retry-After``). When the buffer is full the new line is dropped
and counted by reason; once Loki accepts again a ``log_shipping_dropped`` event says how many
were lost and why.

Streams are labelled by the static labels only (``job``, ``app``, ``env`` and optionally
``host``); ``request_id`` and ``trace_id`` travel as structured metadata, never as labels.

What a ``kill -9`` loses at most: what is in memory, the batch in flight and the lines still
buffered, that is about the last ``batch_wait`` seconds of lines while Loki is reachable, up to
the buffer bound while it is not. The file sink, when there is one, has them all.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import logging
import operator
import os
import random
import threading
import time
import weakref
import zlib
from _thread import get_ident
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import orjson

from alkana_logging import _lifecycle
from alkana_logging import fields as F
from alkana_logging._line import Renderer, truncate
from alkana_logging.console import escape
from alkana_logging.exceptions import ConfigurationError
from alkana_logging.health import PipelineHealth
from alkana_logging.pipeline import Pipeline
from alkana_logging.redaction import mask_url
from alkana_logging.settings import LOKI_OPTIONS, Oversize, Settings, load_settings, loki_options
from alkana_logging.settings import LOKI_PUSH_PATH as PUSH_PATH
from alkana_logging.stdlib import PipelineHandler, stdlib_parts

_monotonic = time.monotonic

if TYPE_CHECKING:
    import requests

    from alkana_logging._http import LokiEndpoint

__all__ = ["PUSH_PATH", "LokiHandler", "LokiSink"]

#: Loki's push endpoint, appended to a base URL (here, not in _http, which needs requests).
#: What a push says of its body, besides the endpoint's tenant and credentials.
_PUSH_HEADERS: Final = {
    "Content-Type": "application/json",
    "Content-Encoding": "gzip",
    "User-Agent": "alkana-logging",
}
#: The logger name of the events this module emits.
LOGGER_NAME: Final = "alkana_logging.loki"

# Drop reasons, as counted in ``pipeline_health()["dropped"]`` and written in the drop event.
REASON_BUFFER_FULL: Final = "loki_buffer_full"
REASON_LINE_TOO_LONG: Final = "loki_line_too_long"
REASON_UNREACHABLE: Final = "loki_unreachable"
REASON_SHUTDOWN: Final = "loki_shutdown_timeout"
REASON_CLOSED: Final = "loki_sink_closed"
REASON_BLOCKED: Final = "loki_ingestion_blocked"
REASON_ERROR: Final = "loki_internal_error"
REASON_REQUEST: Final = "loki_request_error"
REASON_REJECTED_PREFIX: Final = "loki_rejected_"

#: How often a sender waiting to retry looks whether the main thread has ended.
_MAIN_THREAD_POLL: Final = 0.5

#: Loki answers this (a 2xx!) while ``block_ingestion_until`` is in force: nothing was stored.
_BLOCKED_STATUS: Final = 260
_MAX_RETRY_AFTER: Final = 300.0
_ERROR_TEXT_CHARS: Final = 500
#: At most this much of Loki's answer is read (its error text is cut to _ERROR_TEXT_CHARS).
_MAX_ANSWER_BYTES: Final = 64 * 1024

#: One buffered line: its time (ns), the line, and the record's ``request_id`` and ``trace_id``
#: (None when absent or not sent): a flat tuple, the cheapest thing to build on the caller's
#: thread.
_Entry = tuple[int, bytes, Any, Any]


class _Outcome(NamedTuple):
    ok: bool
    retryable: bool
    status: int | None
    error: str
    retry_after: float | None


def _http_module(variable: str | None = None) -> Any:
    """:mod:`alkana_logging._http`, which needs ``requests``.

    Args:
        variable: the environment variable the URL came from, named in the error (a URL given
            to ``LokiHandler`` or ``setup()`` is no variable's).

    Raises:
        ConfigurationError: ``requests`` is not installed.
    """
    try:
        from alkana_logging import _http
    except ImportError as err:
        needs = (
            f"{variable} is set but the 'requests' package is not installed"
            if variable
            else "pushing to Loki needs the 'requests' package, which is not installed"
        )
        raise ConfigurationError(f"{needs}; install alkana-logging[loki]") from err
    return _http


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class LokiSink:
    """A :class:`~alkana_logging.sinks.Sink` that pushes lines to Loki from a background thread.

    ``write()`` only appends to a bounded buffer. The sender thread sends a batch when it holds
    ``batch_bytes`` of lines, when its oldest line is ``batch_wait`` seconds old, on
    :meth:`flush` and on :meth:`close`. A batch that fails with a connection error, a timeout,
    429 or 5xx is retried with exponential backoff and jitter (at least ``Retry-After``) for up
    to ``max_retry_time`` seconds; one that Loki rejects with another 4xx is dropped, counted
    and Loki's error text reported once on stderr. Counters go to ``health`` (its ``dropped``
    by reason, and ``loki_*`` entries in ``health.extra``).

    Args:
        url: Loki's base URL (``http://loki:3100``) or its push endpoint.
        labels: the stream labels; only ``job``, ``app``, ``env`` and ``host`` are accepted.
        health: the counters to report into (shared with the pipeline's other sinks).
        tenant: sent as ``X-Scope-OrgID``.
        username: basic-auth user (with ``password``).
        password: basic-auth password.
        token: bearer token (instead of basic auth).
        structured_metadata: send ``request_id`` and ``trace_id`` as structured metadata.
            Turned off by itself, once and with a note on stderr, if Loki rejects it.
        verify_tls: verify Loki's certificate (True), don't (False), or a CA bundle path.
        batch_bytes: send when the buffered lines reach this many bytes.
        batch_wait: send when the oldest buffered line is this many seconds old.
        buffer_lines: at most this many lines held (queued and in flight); more are dropped.
        buffer_bytes: at most this many bytes of lines held; more are dropped.
        max_line_bytes: Loki's line size limit (``max_line_size``); longer lines are handled
            by ``oversize``.
        oversize: ``"truncate"`` (keep the schema keys and a shortened message, with
            ``log_error`` saying so) or ``"drop"``.
        connect_timeout: seconds to connect to Loki.
        read_timeout: seconds to wait for Loki's answer.
        min_backoff: the first retry waits about this long (seconds) ...
        max_backoff: ... doubling up to this.
        max_retry_time: a batch still failing after this many seconds is dropped.
        flush_timeout: the default deadline of :meth:`flush` and of :meth:`close` (seconds).
        compress_level: the gzip level (1 is fast and shrinks JSON lines about tenfold).
    """

    def __init__(
        self,
        url: str,
        *,
        labels: Mapping[str, str],
        health: PipelineHealth | None = None,
        tenant: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        structured_metadata: bool | None = None,
        verify_tls: bool | str | None = None,
        batch_bytes: int | None = None,
        batch_wait: float | None = None,
        buffer_lines: int | None = None,
        buffer_bytes: int | None = None,
        max_line_bytes: int | None = None,
        oversize: Oversize | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        min_backoff: float | None = None,
        max_backoff: float | None = None,
        max_retry_time: float | None = None,
        flush_timeout: float | None = None,
        compress_level: int | None = None,
    ) -> None:
        # Checked and defaulted where the settings are: LOKI_OPTIONS is their one table.
        options = loki_options(
            {
                "structured_metadata": structured_metadata,
                "verify_tls": verify_tls,
                "batch_bytes": batch_bytes,
                "batch_wait": batch_wait,
                "buffer_lines": buffer_lines,
                "buffer_bytes": buffer_bytes,
                "max_line_bytes": max_line_bytes,
                "oversize": oversize,
                "connect_timeout": connect_timeout,
                "read_timeout": read_timeout,
                "min_backoff": min_backoff,
                "max_backoff": max_backoff,
                "max_retry_time": max_retry_time,
                "flush_timeout": flush_timeout,
                "compress_level": compress_level,
            }
        )
        self._labels = self._check_labels(labels)
        _http = _http_module()  # needs requests: fail here, at setup, not in the sender thread
        self.endpoint: LokiEndpoint = _http.LokiEndpoint.of(
            url,
            tenant=tenant,
            username=username,
            password=password,
            token=token,
            verify_tls=options["verify_tls"],
        )
        self.url = self.endpoint.push_url
        #: The URL as printed (stderr, health, errors).
        self.shown_url = self.endpoint.shown(PUSH_PATH)
        self.health = health if health is not None else PipelineHealth()
        self._metadata: bool = options["structured_metadata"]
        self._batch_bytes: int = options["batch_bytes"]
        self._batch_wait = float(options["batch_wait"])
        self._line_limit: int = options["buffer_lines"]  # 0 once closed: one test refuses both
        self._max_bytes: int = options["buffer_bytes"]
        self._max_line: int = options["max_line_bytes"]
        self._oversize: Oversize = options["oversize"]
        self._connect_timeout = float(options["connect_timeout"])
        self._read_timeout = float(options["read_timeout"])
        self._min_backoff = float(options["min_backoff"])
        self._max_backoff = float(options["max_backoff"])
        self._max_retry_time = float(options["max_retry_time"])
        self._flush_timeout = float(options["flush_timeout"])
        self._compress_level: int = options["compress_level"]
        self._random = random.Random()  # noqa: S311 - jitter, not cryptography

        # Statistics: plain attributes, read without a lock by health.snapshot().
        self.batches_sent = 0
        self.batches_failed = 0
        self.batches_retried = 0
        self.lines_shipped = 0
        self.lines_truncated = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._rejections_reported: set[int] = set()
        self._closed = False
        self._reset_process_state()
        self._register_health()
        # A sink used outside a pipeline still works in a forked child; inside one the pipeline
        # calls after_fork() too, and the second call finds nothing to do.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork_ref(ref))

    # -- construction -----------------------------------------------------------------------------

    @staticmethod
    def _check_labels(labels: Mapping[str, str]) -> dict[str, str]:
        if not isinstance(labels, Mapping):
            raise TypeError(f"labels: got {labels!r}; expected a mapping of label to value")
        unknown = sorted(set(labels) - set(F.STREAM_LABELS))
        if unknown:
            raise ValueError(
                f"labels: got {', '.join(map(repr, unknown))}; expected only the static labels "
                f"{', '.join(F.STREAM_LABELS)} (request ids, users and traces go in the line)"
            )
        for key, value in labels.items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"labels[{key!r}]: got {value!r}; expected a non-empty string")
        if not labels:
            raise ValueError("labels: got none; expected at least job")
        return dict(labels)

    @classmethod
    def from_settings(
        cls, settings: Settings, health: PipelineHealth | None = None, **overrides: Any
    ) -> LokiSink:
        """The sink that ``setup(loki_url=...)`` / ``LOKI_URL`` adds to the pipeline.

        Labels are ``job`` (``LOKI_JOB``), ``app`` (``APP_NAME``), ``env`` (``APP_ENV``) and
        ``host`` (unless ``host_label=False``); credentials, tenant, structured metadata and
        TLS verification come from the ``LOKI_*`` settings. ``overrides`` are keyword arguments
        of :class:`LokiSink`.

        Raises:
            ConfigurationError: ``loki_url`` is not set or a Loki setting is not accepted.
        """
        if not settings.loki_url:
            raise ConfigurationError("LOKI_URL: got no value; expected Loki's URL")
        # Needs requests: said here, where the URL's origin is known (the settings read it).
        from_environment = os.environ.get("LOKI_URL", "").strip() == settings.loki_url
        _http_module("LOKI_URL" if from_environment else None)
        host_label = overrides.pop("host_label", settings.loki_host_label)
        labels = {
            F.LABEL_JOB: settings.loki_job,
            F.LABEL_APP: settings.app_name,
            F.LABEL_ENV: settings.app_env,
        }
        if host_label:
            labels[F.LABEL_HOST] = settings.host
        kwargs: dict[str, Any] = {
            name: getattr(settings, f"loki_{name}")
            for name, option in LOKI_OPTIONS.items()
            if option.setting
        }
        kwargs.update(overrides)
        try:
            return cls(
                settings.loki_url,
                labels=labels,
                health=health,
                **settings.loki_identity,
                **kwargs,
            )
        except (TypeError, ValueError) as err:
            if isinstance(err, ConfigurationError):
                raise
            raise ConfigurationError(
                f"Loki settings (LOKI_URL, LOKI_USERNAME/LOKI_PASSWORD, LOKI_TOKEN, ...): {err}"
            ) from err

    def _reset_process_state(self) -> None:
        """Everything that belongs to one process: locks, buffer, thread, HTTP session."""
        self._pid = os.getpid()
        # Re-entrant: a signal handler that logs while its thread is inside write() must not
        # wait for itself.
        self._lock = threading.RLock()
        self._done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._queue: collections.deque[_Entry] = collections.deque()
        # Lines buffered (queued and in flight) = accepted - finished; bytes queued for the next
        # batch = depth_bytes - inflight_bytes. The caller's thread updates two counters.
        self._depth_bytes = 0
        self._inflight_bytes = 0
        self._signalled = False
        self._accepted = 0
        self._finished = 0
        self._flush_target = 0
        self._unreported: dict[str, int] = {}
        self._closing = False
        self._close_deadline = 0.0
        self._abandoned = False
        self._failing = False
        self._thread: threading.Thread | None = None
        self._sender_ident = -1
        self._emitting = False
        self._start_lock = threading.RLock()
        self._starting = False
        # When the oldest queued line was queued (monotonic): batch_wait counts from it.
        self._queued_since = 0.0
        # The thread whose end ends this process (see _loop).
        self._main = threading.main_thread()
        self._session: requests.Session | None = None

    def _register_health(self) -> None:
        extra = self.health.extra
        # Callables read plain attributes and take no lock: snapshot() calls them while it
        # holds the health lock.
        extra["loki_batches_sent"] = lambda: self.batches_sent
        extra["loki_batches_failed"] = lambda: self.batches_failed
        extra["loki_batches_retried"] = lambda: self.batches_retried
        extra["loki_lines_shipped"] = lambda: self.lines_shipped
        extra["loki_lines_truncated"] = lambda: self.lines_truncated
        extra["loki_buffer_lines"] = lambda: self._accepted - self._finished
        extra["loki_buffer_bytes"] = lambda: self._depth_bytes
        extra["loki_last_error"] = lambda: self.last_error
        extra["loki_last_error_at"] = lambda: self.last_error_at

    # -- the caller's side ----------------------------------------------------------------------

    def write(self, line: bytes, record: Mapping[str, Any], ns: int) -> None:  # noqa: PLR0912
        """Queue one line for Loki; never blocks on the network and never raises."""
        try:
            if self._sender_ident == get_ident() and not self._emitting:
                # Logged by the sender's own HTTP stack (urllib3's debug lines): shipping them
                # would make every push cause the next one. The file and stdout still get them.
                return
            # A copy without the newline (which is not sent): orjson's bytes objects keep the
            # whole buffer they were written into (4 KiB and more for a 300-byte line), and
            # this buffer may hold many lines for a long time.
            line = line.rstrip(b"\n")
            size = len(line)
            if size > self._max_line:
                shortened = self._shorten(line, record)
                if shortened is None:
                    return
                line, size = shortened, len(shortened)
            # Kept whether structured metadata is on or not: _encode() decides.
            request_id = record.get(F.REQUEST_ID)
            trace_id = record.get(F.TRACE_ID)
            lock: Any = self._lock
            # A signal handler that logs while its thread is in here already holds the lock:
            # it goes on without taking it again (the statements below are each whole when a
            # handler runs), so an interrupt in it cannot release the outer call's lock.
            reentered = lock._is_owned()
            if not reentered:
                # acquire/release by hand (half the cost of "with"), the acquire first inside
                # the try, one call to undo it: an interrupt lands only after a call returns
                # (see FileSink.write).
                try:
                    lock.acquire()
                except BaseException:
                    try:  # noqa: SIM105 - contextlib.suppress() is Python code: interruptible
                        lock.release()
                    except RuntimeError:
                        pass
                    raise
            try:
                if (
                    self._accepted - self._finished < self._line_limit
                    and self._depth_bytes + size <= self._max_bytes
                ):
                    if not self._queue:
                        self._queued_since = _monotonic()
                    self._queue.append((ns, line, request_id, trace_id))
                    self._accepted += 1
                    self._depth_bytes += size
                    dropped = None
                    wake = (
                        self._depth_bytes - self._inflight_bytes >= self._batch_bytes
                        and not self._signalled
                    )
                    if wake:
                        self._signalled = True
                else:
                    dropped = REASON_CLOSED if self._closed else REASON_BUFFER_FULL
                    self._unreported[dropped] = self._unreported.get(dropped, 0) + 1
            finally:
                if not reentered:
                    lock.release()
            if dropped is not None:
                self.health.drop(dropped)
                return
            if wake:
                self._wake.set()
            if self._thread is None:
                self._start()
        except Exception as err:  # noqa: BLE001 - shipping must never break the caller
            self.health.internal_error(f"LokiSink.write failed: {err!r}")

    def _shorten(self, line: bytes, record: Mapping[str, Any]) -> bytes | None:
        """A line over Loki's limit: the schema keys and a shortened message, or None (dropped)."""
        limit = self._max_line
        if self._oversize == "truncate":
            small: dict[str, Any] = {k: record[k] for k in F.SCHEMA_KEYS if k in record}
            for key in (F.REQUEST_ID, F.TRACE_ID, F.SPAN_ID, F.EVENT):
                value = record.get(key)
                if isinstance(value, (str, int, float)) and len(str(value)) <= 256:
                    small[key] = value
            # The renderer's cut: a message it shortened already says its original length.
            small[F.MESSAGE] = truncate(str(small.get(F.MESSAGE, "")), limit // 4)
            small[F.LOG_ERROR] = (
                f"line of {len(line)} bytes exceeded the Loki line limit of {limit} bytes; "
                "fields dropped, message truncated"
            )
            try:
                short = bytes(orjson.dumps(small, default=str))
            except Exception:  # noqa: BLE001 - dropped below
                short = b""
            if short and len(short) <= limit:
                with self._lock:
                    self.lines_truncated += 1
                return short
        with self._lock:
            self._unreported[REASON_LINE_TOO_LONG] = (
                self._unreported.get(REASON_LINE_TOO_LONG, 0) + 1
            )
        self.health.drop(REASON_LINE_TOO_LONG)
        return None

    def _start(self) -> None:
        with self._start_lock:
            # _starting: a signal handler that logs while this thread starts the sender.
            if self._thread is not None or self._closed or self._starting:
                return
            self._starting = True
            try:
                thread = threading.Thread(target=self._run, name="alkana-logging-loki", daemon=True)
                # The process's signals are the application's: were one given to this thread, a
                # main thread blocked in a wait that only a signal to itself interrupts (a Pool
                # worker waiting for its next task) would never run its handler. Blocked from
                # the thread's first instruction; the threads it starts (the HTTP deadline
                # timers) inherit the mask.
                _lifecycle.start_thread(thread)
            except RuntimeError as err:  # interpreter shutting down, or no thread left
                self.health.internal_error(f"LokiSink could not start its sender: {err!r}")
                return
            finally:
                self._starting = False
            self._thread = thread

    def flush(self, timeout: float | None = None) -> None:
        """Send what was written before this call; wait at most ``timeout`` seconds."""
        self.wait_sent(timeout)

    def wait_sent(self, timeout: float | None = None) -> bool:
        """Send what was written before this call and wait at most ``timeout`` seconds
        (``flush_timeout`` when None).

        Returns:
            True when every such line was sent (or dropped and counted), False on timeout.
        """
        timeout = self._flush_timeout if timeout is None else timeout
        with self._lock:
            target = self._accepted
            if self._finished >= target:
                return True
            self._flush_target = max(self._flush_target, target)
        if self._thread is None:
            self._start()
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._done:
            while self._finished < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return self._finished >= target
                self._done.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Send what is buffered within ``timeout`` seconds (``flush_timeout``), then stop.

        Lines not sent by then are counted as dropped (``loki_shutdown_timeout``).
        """
        timeout = self._flush_timeout if timeout is None else timeout
        with self._lock:
            if self._closed:
                return
            thread = self._thread
            sender_alive = thread is not None and thread.is_alive()
            if self._closing:
                # Closing already (another close(), or the sender saw the main thread end):
                # wait for it as long as it may take, no longer.
                wait = max(0.0, self._close_deadline - time.monotonic()) + 1.0
            else:
                self._closing = True
                self._close_deadline = time.monotonic() + timeout
                wait = -1.0
                if not sender_alive:
                    self._mark_closed()
        if wait >= 0:
            if thread is not None and sender_alive and thread is not threading.current_thread():
                thread.join(wait)
            return
        if thread is None or not sender_alive:
            self._give_up_all(REASON_SHUTDOWN)
            self._close_session()
            return
        self._wake.set()
        self._stop.set()
        # The sender caps its own waits and HTTP timeouts at the deadline; the grace covers
        # the one HTTP call that may be in progress when the deadline passes.
        thread.join(max(0.0, self._close_deadline - time.monotonic()) + 1.0)
        if thread.is_alive():
            with self._lock:
                self._mark_closed()
                self._abandoned = True
            self._give_up_all(REASON_SHUTDOWN)
            return
        self._close_session()

    def _mark_closed(self) -> None:
        self._closed = True
        self._line_limit = 0

    def after_fork(self) -> None:
        """In a forked child: an empty buffer and a sender of its own (started on first use).

        The lines the parent had buffered are the parent's to send.
        """
        if self._pid == os.getpid():
            return
        self._reset_process_state()  # the parent's session sockets are left alone, not closed

    # -- the sender thread ------------------------------------------------------------------------

    def _run(self) -> None:
        self._sender_ident = threading.get_ident()
        try:
            self._loop()
        except BaseException as err:  # noqa: BLE001 - the thread must end cleanly, counted
            self.health.internal_error(f"the Loki sender stopped: {err!r}")
            with self._lock:
                self._mark_closed()
            self._give_up_all(REASON_ERROR)

    def _loop(self) -> None:
        wait = self._batch_wait
        while True:
            if not self._closing and not self._main.is_alive():
                self._main_thread_ended()
            with self._lock:
                if self._abandoned:
                    return
                head = self._queued_since if self._queue else None
                urgent = self._closing or self._finished < self._flush_target
                full = self._depth_bytes - self._inflight_bytes >= self._batch_bytes
                ended = head is None and self._closing
                if ended:
                    self._mark_closed()
                    self._done.notify_all()
            if ended:
                self._say_unreported()
                return
            if self._closing and time.monotonic() >= self._close_deadline:
                self._give_up_all(REASON_SHUTDOWN)
                with self._lock:
                    self._mark_closed()
                return
            now = _monotonic()  # never the wall clock: a step back would hold batches for hours
            if head is not None and (urgent or full or now >= head + wait):
                self._ship(self._take())
                continue
            timeout = wait
            if head is not None:
                timeout = min(max(head + wait - now, 0.001), timeout)
            self._wake.wait(timeout)
            self._wake.clear()

    def _take(self) -> list[_Entry]:
        """Up to ``batch_bytes`` of lines, oldest first; they stay counted as buffered."""
        batch: list[_Entry] = []
        size = 0
        queue = self._queue
        limit = self._batch_bytes
        # popleft() is atomic against the writers' append(): no lock while taking many lines.
        while queue and size < limit:
            entry = queue.popleft()
            batch.append(entry)
            size += len(entry[1])
        with self._lock:
            self._inflight_bytes += size
            self._signalled = False
        return batch

    def _encode(self, batch: list[_Entry]) -> bytes:
        batch.sort(key=_BY_NS)  # stable: lines with one timestamp keep their order
        texts = _texts(batch)
        values: list[tuple[Any, ...]]
        if self._metadata:
            values = _values_with_metadata(batch, texts)
        else:
            # map() and zip() loop in C: a third of the comprehension's cost. Tuples, which
            # orjson writes as arrays: a list more a line is an allocation and a container
            # for the garbage collector to visit, on the thread that holds the GIL.
            values = list(zip(map(str, map(_BY_NS, batch)), texts, strict=True))
        body = orjson.dumps({"streams": [{"stream": self._labels, "values": values}]})
        return zlib.compress(body, self._compress_level, wbits=31)  # 31: a gzip member

    def _ship(self, batch: list[_Entry]) -> None:
        size = sum(len(entry[1]) for entry in batch)
        try:
            body = self._encode(batch)
        except Exception as err:  # noqa: BLE001
            self.health.internal_error(f"encoding a Loki batch failed: {err!r}")
            self._finish(batch, size, REASON_ERROR)
            return
        started = time.monotonic()
        attempt = 0
        while True:
            outcome = self._post(body)
            if self._abandoned:
                return
            if outcome.ok:
                self._succeeded(len(batch), size)
                return
            if self._retry_without_metadata(outcome, batch):
                body = self._encode(batch)
                continue
            self._note_error(outcome)
            attempt += 1
            reason = self._give_up_reason(outcome, started)
            if reason is not None:
                self._finish(batch, size, reason)
                return
            with self._lock:
                self.batches_retried += 1
            self._sleep(self._delay(attempt, outcome.retry_after))
            if self._abandoned:
                return

    def _give_up_reason(self, outcome: _Outcome, started: float) -> str | None:
        """Why a failed batch is dropped now, or None to retry it."""
        if not outcome.retryable:
            if outcome.status is None:
                return REASON_REQUEST
            if outcome.status == _BLOCKED_STATUS:
                return REASON_BLOCKED
            return f"{REASON_REJECTED_PREFIX}{outcome.status}"
        if not self._closing and not self._main.is_alive():
            self._main_thread_ended()  # a child forked from a thread: see _main_thread_ended
        now = time.monotonic()
        if self._closing and now >= self._close_deadline:
            return REASON_SHUTDOWN
        if now - started >= self._max_retry_time:
            return REASON_UNREACHABLE
        return None

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with equal jitter; never less than Loki's ``Retry-After``."""
        ceiling = min(self._max_backoff, self._min_backoff * 2.0 ** (attempt - 1))
        delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, _MAX_RETRY_AFTER))
        return delay

    def _sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds, cut short by the close deadline (and by the end of the main
        thread, looked at twice a second: then the close deadline applies)."""
        end = time.monotonic() + delay
        while not self._closing:
            left = end - time.monotonic()
            if left <= 0:
                return
            if self._stop.wait(min(left, _MAIN_THREAD_POLL)):
                break
            if not self._main.is_alive():
                self._main_thread_ended()
        # close() began: the rest of the wait is bounded by its deadline.
        remaining = min(end, self._close_deadline) - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def _retry_without_metadata(self, outcome: _Outcome, batch: list[_Entry]) -> bool:
        """Loki without structured metadata support rejects it: turn it off once and resend."""
        if (
            outcome.status != 400
            or not self._metadata
            or "structured metadata" not in outcome.error.lower()
            or not any(_has_metadata(entry) for entry in batch)
        ):
            return False
        self._metadata = False
        self.health.report(
            f"Loki rejects structured metadata ({outcome.error}); sending request_id and "
            "trace_id in the line only (set LOKI_STRUCTURED_METADATA=false to skip this try)"
        )
        return True

    def _post(self, body: bytes) -> _Outcome:
        """One push, bounded whatever the server does: at most ``connect_timeout +
        read_timeout`` seconds in all (connect, send, the whole answer; less while closing), and
        at most ``_MAX_ANSWER_BYTES`` of the answer read."""
        import requests

        from alkana_logging import _http  # needs requests: imported where it is used

        session = self._session
        if session is None:
            session = self._session = self._new_session()
        connect, read = self._connect_timeout, self._read_timeout
        deadline = connect + read
        if self._closing:
            remaining = max(0.05, self._close_deadline - time.monotonic())
            connect, read, deadline = min(connect, remaining), min(read, remaining), remaining
        try:
            answer = _http.request(
                session,
                "POST",
                self.url,
                data=body,
                deadline=deadline,
                timeout=(connect, read),
                max_body=_MAX_ANSWER_BYTES,
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            return _Outcome(False, True, None, f"{type(err).__name__}: {err}", None)
        except Exception as err:  # noqa: BLE001 - e.g. a bad URL, or a warning turned error
            return _Outcome(False, False, None, f"{type(err).__name__}: {err}", None)
        status = answer.status
        if 200 <= status < 300 and status != _BLOCKED_STATUS:
            if not answer.truncated:
                return _Outcome(True, False, status, "", None)
            # Loki answers a push with no body: this is something else. Not retried (the
            # lines may be stored), not counted as shipped.
            return _Outcome(
                False,
                False,
                status,
                f"HTTP {status} with an answer over {_MAX_ANSWER_BYTES} bytes (cut, not read): "
                "not Loki's push answer",
                None,
            )
        if 300 <= status < 400:
            # Never followed: the credentials would go with the batch to wherever it points.
            location = mask_url(answer.headers.get("Location", ""))
            return _Outcome(
                False, False, status, f"HTTP {status}: redirect to {location!r} not followed", None
            )
        # Printed on stderr: a server's control characters are escaped, not sent to a terminal.
        text = escape(" ".join(answer.text().split())[:_ERROR_TEXT_CHARS])
        if answer.truncated:
            text += f" …[answer cut at {_MAX_ANSWER_BYTES} bytes]"
        retryable = status == 429 or status >= 500
        retry_after = _parse_retry_after(answer.headers.get("Retry-After"))
        return _Outcome(False, retryable, status, f"HTTP {status}: {text}", retry_after)

    def _new_session(self) -> requests.Session:
        from alkana_logging import _http

        return _http.read_environment_once(
            self.endpoint.session(headers=_PUSH_HEADERS), self.endpoint.push_url
        )

    def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):  # closing sockets at exit: nothing to do
                session.close()

    # -- outcomes ---------------------------------------------------------------------------------

    def _succeeded(self, lines: int, size: int) -> None:
        with self._lock:
            self._depth_bytes -= size
            self._inflight_bytes -= size
            self._finished += lines
            self.lines_shipped += lines
            self.batches_sent += 1
            self._done.notify_all()
            unreported, self._unreported = self._unreported, {}
            recovered = self._failing
            self._failing = False
        if recovered:
            self.health.report(f"pushing to Loki at {self.shown_url} works again")
        for reason, count in unreported.items():
            self._emit_dropped(reason, count)

    def _emit_dropped(self, reason: str, count: int) -> None:
        # Through the pipeline, so the event reaches the file and stdout too, and this sink:
        # write() only queues, and no lock of this sink is held here, so nothing waits on it.
        from alkana_logging import _state

        self._emitting = True
        try:
            _state.emit(
                F.WARNING,
                LOGGER_NAME,
                f"{count} log lines were not shipped to Loki ({reason})",
                {F.EVENT: F.EVENT_LOG_SHIPPING_DROPPED, F.DROPPED: count, F.REASON: reason},
            )
        except Exception as err:  # noqa: BLE001
            self.health.internal_error(f"emitting the drop event failed: {err!r}")
        finally:
            self._emitting = False

    def _finish(self, batch: list[_Entry], size: int, reason: str) -> None:
        """A batch given up: counted as dropped for ``reason``."""
        lines = len(batch)
        with self._lock:
            self._depth_bytes -= size
            self._inflight_bytes -= size
            self._finished += lines
            self.batches_failed += 1
            self._unreported[reason] = self._unreported.get(reason, 0) + lines
            self._done.notify_all()
        self.health.drop(reason, lines)

    def _give_up_all(self, reason: str) -> None:
        """Drop every buffered line (queued and in flight): the sender stops or was abandoned.

        Said on stderr too, with the lines dropped before and not said yet (see _say_unreported).
        """
        with self._lock:
            lines = self._accepted - self._finished
            self._queue.clear()
            self._depth_bytes = self._inflight_bytes = 0
            self._finished = self._accepted
            if lines:
                self._unreported[reason] = self._unreported.get(reason, 0) + lines
            self._done.notify_all()
        if lines:
            self.health.drop(reason, lines)
        self._say_unreported()

    def _say_unreported(self) -> None:
        """The sender ends: the drops not told yet (an event follows the next successful push,
        and there is none now; a batch in flight given up at the close deadline among them) are
        said on stderr, a line a reason: at exit, nothing else will ever read the counts."""
        with self._lock:
            unreported, self._unreported = self._unreported, {}
        for reason, count in unreported.items():
            self.health.report(
                f"{count} log lines were not shipped to Loki at {self.shown_url} ({reason})"
            )

    def _main_thread_ended(self) -> None:
        """The thread this process runs for has ended, and the process lives on.

        A child forked from a thread other than the main one has no interpreter shutdown (no
        ``atexit``): it ends when its last thread does, and this daemon thread would keep it
        alive for ever. So the sender closes by itself: it sends what is queued (at most
        ``flush_timeout`` seconds), then ends. In an ordinary exit the main thread is marked
        ended before ``atexit`` runs; ``close()`` then waits for this same closing.
        """
        with self._lock:
            if self._closing or self._closed:
                return
            self._closing = True
            self._close_deadline = time.monotonic() + self._flush_timeout

    def _note_error(self, outcome: _Outcome) -> None:
        message = (
            f"pushing to Loki at {self.shown_url} failed: {self.endpoint.scrub(outcome.error)}"
        )
        self.last_error = message
        self.last_error_at = time.time()
        if outcome.retryable or outcome.status is None:
            report = not self._failing  # once per outage; "works again" closes it
            self._failing = True
        else:
            # A rejection is Loki's verdict on the data: its text once per status code.
            report = outcome.status not in self._rejections_reported
            self._rejections_reported.add(outcome.status)
        self.health.write_error(message, report=report)


_BY_NS: Final = operator.itemgetter(0)
_LINE: Final = operator.itemgetter(1)


def _has_metadata(entry: _Entry) -> bool:
    return entry[2] is not None or entry[3] is not None


def _texts(batch: list[_Entry]) -> list[str]:
    """The batch's lines as text (what is not UTF-8 replaced, as a JSON string must be)."""
    lines = list(map(_LINE, batch))
    try:
        # The pipeline's lines are UTF-8 (orjson's): decoded in one C loop.
        return list(map(bytes.decode, lines))
    except (UnicodeDecodeError, TypeError):  # not UTF-8, or a bytearray of another origin
        return [line.decode("utf-8", "replace") for line in lines]


def _values_with_metadata(batch: list[_Entry], texts: list[str]) -> list[tuple[Any, ...]]:
    """``[ns, line]``, or ``[ns, line, {request_id, trace_id}]`` for a line that has either
    (as tuples: see :meth:`LokiSink._encode`).

    One branch a case rather than a dict built from pairs: this loop runs for every line
    shipped, on the sender's thread, and the GIL it holds is the application's.
    """
    values: list[tuple[Any, ...]] = []
    append = values.append
    request_key = F.REQUEST_ID
    for (ns, _, request_id, trace_id), text in zip(batch, texts, strict=True):
        if trace_id is None:  # the usual cases first, with the fewest tests
            if request_id is None:
                append((str(ns), text))
                continue
            if type(request_id) is str and request_id:  # type(): a proxy fakes __class__
                append((str(ns), text, {request_key: request_id}))
                continue
        has_request = request_id is not None and request_id != ""
        if trace_id is None or trace_id == "":
            if has_request:
                request = request_id if type(request_id) is str else str(request_id)
                append((str(ns), text, {F.REQUEST_ID: request}))
            else:
                append((str(ns), text))
            continue
        trace = trace_id if type(trace_id) is str else str(trace_id)
        if has_request:
            request = request_id if type(request_id) is str else str(request_id)
            append((str(ns), text, {F.REQUEST_ID: request, F.TRACE_ID: trace}))
        else:
            append((str(ns), text, {F.TRACE_ID: trace}))
    return values


def _after_fork_ref(ref: weakref.ref[LokiSink]) -> None:
    sink = ref()
    if sink is not None:
        sink.after_fork()


class LokiHandler(PipelineHandler):
    """A ``logging.Handler`` that pushes records to Loki, for adding by hand to a logger.

    A :class:`~alkana_logging.stdlib.PipelineHandler` over a pipeline of its own with one
    :class:`LokiSink`: records become the contract's JSON lines exactly as ``setup()`` renders
    them (redaction, ``trace_id``/``span_id`` of the recording OpenTelemetry span, a line that
    could not be rendered replaced by one that says so). Settings come from the environment
    (``LOKI_URL``, ``LOKI_TENANT``, ``APP_NAME``, ...), overridden by the keyword arguments;
    works from ``dictConfig`` with ``"()": "alkana_logging.LokiHandler"``. Not needed after
    ``setup(loki_url=...)``, which ships every line already. Its counters are ``health`` (the
    pipeline's), not ``pipeline_health()``'s.

    Args:
        url: Loki's URL (``LOKI_URL`` when omitted).
        level: the handler's level.
        app_name: the ``app`` value and label.
        app_env: the ``env`` value and label.
        job: the ``job`` label.
        tenant: ``X-Scope-OrgID``.
        username: basic-auth user.
        password: basic-auth password.
        token: bearer token.
        redact_keys: extra keys to redact.
        **sink_options: keyword arguments of :class:`LokiSink` (``batch_wait``, ...).

    Raises:
        ConfigurationError: no URL, or a setting is not accepted.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        level: int | str = logging.NOTSET,
        app_name: str | None = None,
        app_env: str | None = None,
        job: str | None = None,
        tenant: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        redact_keys: Any = None,
        **sink_options: Any,
    ) -> None:
        settings = load_settings(
            {
                "loki_url": url,
                "app_name": app_name,
                "app_env": app_env,
                "loki_job": job,
                "loki_tenant": tenant,
                "loki_username": username,
                "loki_password": password,
                "loki_token": token,
                "redact_keys": redact_keys,
                "stdout": True,  # this handler writes nowhere else; skip that check
            }
        )
        if not settings.loki_url:
            raise ConfigurationError(
                "LokiHandler: got no url and LOKI_URL is not set; expected Loki's URL"
            )
        health = PipelineHealth()
        self.sink = LokiSink.from_settings(settings, health, **sink_options)
        super().__init__(Pipeline(Renderer.from_settings(settings), [self.sink], health=health))
        self.setLevel(level)
        self.health = health
        ref = weakref.ref(self)
        # setup()'s pipeline is looked after by its own fork hook; this one is not setup()'s.
        os.register_at_fork(after_in_child=lambda: _handler_after_fork(ref))

    def handle(self, record: logging.LogRecord) -> Any:
        # The renderer and the sink are thread-safe: no handler lock. Unlike setup()'s handler,
        # a ForwardedRecord is shipped: it is a line of setup()'s pipeline, not of this one.
        rv = self.filter(record) if self.filters else True
        if rv:
            if rv is not True and isinstance(rv, logging.LogRecord):  # 3.12+: a filter's record
                record = rv
            pipeline = self.pipeline
            pipeline.emit(*stdlib_parts(record, pipeline.redactor))
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        self.pipeline.emit(*stdlib_parts(record, self.pipeline.redactor))

    def flush(self) -> None:
        self.pipeline.flush()

    def close(self) -> None:
        try:
            self.pipeline.close()
        finally:
            super().close()


def _handler_after_fork(ref: weakref.ref[LokiHandler]) -> None:
    handler = ref()
    if handler is not None:
        handler.pipeline.after_fork()
