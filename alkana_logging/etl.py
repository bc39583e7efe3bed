"""ETL runs as log events: ``etl_run_started``, ``etl_step_finished``, ``etl_run_finished``.

::

    alkana_logging.setup()
    with etl_run("raw_mb51", job="daily") as run:
        with run.step("extract") as step:
            rows = extract()
            step.rows(len(rows))
        load(rows)
        run.rows(len(rows))

Every line logged inside the run carries ``etl_run_id``, ``table`` and ``etl_job`` (and
``step`` inside a step). The finished event says ``success`` or ``failed``: any exception,
``KeyboardInterrupt`` and ``SystemExit`` included, fails the run and is re-raised. The
freshness queries and alerts read ``etl_run_finished`` lines only, so a table needs no list.
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, ParamSpec, TypeVar

from alkana_logging import _state
from alkana_logging import fields as F
from alkana_logging.context import bind_context, reset_context, unbind_context
from alkana_logging.metrics import AsyncWith, ExcType, Tb, error_summary, wrap_calls

__all__ = ["EtlRun", "EtlStep", "current_run", "etl_run"]

#: The logger named in the ETL events.
LOGGER_NAME: Final = "alkana_logging.etl"

_RUN_KEYS: Final = frozenset(
    (
        F.EVENT,
        F.ETL_RUN_ID,
        F.TABLE,
        F.ETL_JOB,
        F.STATUS,
        F.ROWS,
        F.DURATION_MS,
        F.FINISHED_AT,
        F.ERROR_FIELD,
        F.STEP,
    )
)

P = ParamSpec("P")
R = TypeVar("R")

_CURRENT_RUN: contextvars.ContextVar[EtlRun | None] = contextvars.ContextVar(
    "alkana_logging_etl_run", default=None
)


def current_run() -> EtlRun | None:
    """The run in progress in this context (inside ``with etl_run(...)`` or a decorated call)."""
    return _CURRENT_RUN.get()


class _RowCounter(AsyncWith):
    """Counts the rows a run or a step handled (``rows(n)``), from any thread."""

    __slots__ = ("_lock", "_rows")
    _OWNER: ClassVar[str] = "run"

    def __init__(self) -> None:
        self._rows = 0
        self._lock = threading.Lock()

    @property
    def row_count(self) -> int:
        """The rows counted so far."""
        return self._rows

    def rows(self, n: int) -> None:
        """Add ``n`` to the rows counted (``rows`` in the finished event).

        Raises:
            TypeError: ``n`` is not an int.
            ValueError: ``n`` is negative.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"{self._OWNER}.rows(): expected an int, got {n!r}")
        if n < 0:
            raise ValueError(f"{self._OWNER}.rows(): expected a count of 0 or more, got {n}")
        with self._lock:
            self._rows += n


def _emit_finished(
    message: str, fields: dict[str, Any], exc: BaseException | None, *, with_traceback: bool = False
) -> None:
    """A finished event; after an exception at error level, with ``error`` (``Type: message``)
    and, ``with_traceback``, the exception's fields."""
    if exc is not None:
        fields[F.ERROR_FIELD] = error_summary(exc)
    level = F.INFO if exc is None else F.ERROR
    _state.emit(level, LOGGER_NAME, message, fields, exc=exc if with_traceback else None)


class _Bound:
    """Binds context values for a block; the token is reset on exit, in the context that set it."""

    __slots__ = ("_keys", "_token")

    def __init__(self) -> None:
        self._token: contextvars.Token[Mapping[str, Any]] | None = None
        self._keys: tuple[str, ...] = ()

    def bind(self, values: Mapping[str, Any]) -> None:
        self._keys = tuple(values)
        self._token = bind_context(**values)

    def reset(self) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        try:
            reset_context(token)
        except ValueError:
            # Exited in another context than it was entered (a generator moved between tasks):
            # the token is no use there, so remove the run's keys instead.
            unbind_context(*self._keys)


class EtlStep(_RowCounter):
    """One step of a run; writes ``etl_step_finished`` when its block ends.

    A step counts its own rows (``step.rows(n)``); they are not added to the run's count, since
    the steps of a run usually handle the same rows one after the other.
    """

    __slots__ = ("_bound", "_start", "name", "run")
    _OWNER: ClassVar[str] = "step"

    def __init__(self, run: EtlRun, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"step(): name must be a non-empty string, got {name!r}")
        super().__init__()
        self.run = run
        self.name = name
        self._start = 0.0
        self._bound = _Bound()

    def __enter__(self) -> EtlStep:
        self._start = time.perf_counter()
        self._bound.bind({F.STEP: self.name})
        return self

    def __exit__(self, exc_type: ExcType, exc: BaseException | None, tb: Tb) -> None:
        seconds = time.perf_counter() - self._start
        try:
            run = self.run
            fields: dict[str, Any] = {
                F.EVENT: F.EVENT_ETL_STEP_FINISHED,
                F.ETL_RUN_ID: run.run_id,
                F.TABLE: run.table,
                F.STEP: self.name,
                F.ROWS: self._rows,
                F.DURATION_MS: round(seconds * 1000.0, 3),
                F.STATUS: F.STATUS_SUCCESS if exc is None else F.STATUS_FAILED,
            }
            if run.job is not None:
                fields[F.ETL_JOB] = run.job
            # The stack trace goes with the run's finished event, once.
            _emit_finished(f"etl step {self.name} of {run.table} {fields[F.STATUS]}", fields, exc)
        finally:
            self._bound.reset()


class EtlRun(_RowCounter):
    """One run of an ETL job for one table. Make it with :func:`etl_run`.

    Attributes:
        table: the table loaded.
        job: the job's name, or None.
        run_id: this run's id (32 hex digits), the ``etl_run_id`` of its lines.
        fields: extra fields of the run's events.
    """

    __slots__ = (
        "_bound",
        "_run_token",
        "_start",
        "_state",
        "fields",
        "job",
        "run_id",
        "table",
    )

    def __init__(self, table: str, job: str | None, fields: dict[str, Any]) -> None:
        if not isinstance(table, str) or not table:
            raise ValueError(f"etl_run(): table must be a non-empty string, got {table!r}")
        if job is not None and (not isinstance(job, str) or not job):
            raise ValueError(f"etl_run(): job must be a non-empty string or None, got {job!r}")
        taken = _RUN_KEYS.intersection(fields)
        if taken:
            raise ValueError(
                f"etl_run(): fields {sorted(taken)} are written by etl_run() itself; "
                "choose other names"
            )
        self.table = table
        self.job = job
        self.fields = fields
        super().__init__()
        self.run_id = uuid.uuid4().hex
        self._start = 0.0
        self._state = "new"
        self._bound = _Bound()
        self._run_token: contextvars.Token[EtlRun | None] | None = None

    def step(self, name: str) -> EtlStep:
        """A context manager (sync and async) for one step: ``with run.step("extract") as step``."""
        return EtlStep(self, name)

    def _ids(self) -> dict[str, Any]:
        ids: dict[str, Any] = {F.ETL_RUN_ID: self.run_id, F.TABLE: self.table}
        if self.job is not None:
            ids[F.ETL_JOB] = self.job
        return ids

    # -- context manager ------------------------------------------------------------------------

    def __enter__(self) -> EtlRun:
        if self._state != "new":
            raise RuntimeError(
                f"etl_run({self.table!r}) was already entered; a run runs once "
                "(use etl_run(...) again, or it as a decorator)"
            )
        self._state = "running"
        ids = self._ids()
        self._bound.bind(ids)
        self._run_token = _CURRENT_RUN.set(self)
        _state.emit(
            F.INFO,
            LOGGER_NAME,
            f"etl run of {self.table} started",
            {F.EVENT: F.EVENT_ETL_RUN_STARTED, **ids, **self.fields},
        )
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: ExcType, exc: BaseException | None, tb: Tb) -> None:
        seconds = time.perf_counter() - self._start
        self._state = "finished"
        try:
            status = F.STATUS_SUCCESS if exc is None else F.STATUS_FAILED
            fields: dict[str, Any] = {
                F.EVENT: F.EVENT_ETL_RUN_FINISHED,
                **self._ids(),
                F.STATUS: status,
                F.ROWS: self._rows,
                F.DURATION_MS: round(seconds * 1000.0, 3),
                F.FINISHED_AT: time.time(),
                **self.fields,
            }
            message = f"etl run of {self.table} {status}: {self._rows} rows"
            _emit_finished(message, fields, exc, with_traceback=True)
        finally:
            run_token, self._run_token = self._run_token, None
            if run_token is not None:
                try:
                    _CURRENT_RUN.reset(run_token)
                except ValueError:  # exited in another context; see _Bound.reset
                    _CURRENT_RUN.set(None)
            self._bound.reset()

    # -- decorator ------------------------------------------------------------------------------

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Run every call of ``func`` as a new run; inside, :func:`current_run` returns it."""
        table, job, fields = self.table, self.job, self.fields
        return wrap_calls(func, lambda: EtlRun(table, job, fields))


def etl_run(table: str, job: str | None = None, **fields: Any) -> EtlRun:
    """One run of an ETL job for one table: ``etl_run_started``, later ``etl_run_finished``.

    A context manager (``with`` and ``async with``) and a decorator (sync and async functions;
    every call is a new run, reachable inside with :func:`current_run`). While it runs,
    ``etl_run_id``, ``table`` and ``etl_job`` are bound for every line logged. The finished event
    has ``status`` (``success``/``failed``), ``rows``, ``duration_ms``, ``finished_at`` (epoch
    seconds, float) and, on failure, ``error`` and the exception's fields; the exception, even
    ``KeyboardInterrupt`` or ``SystemExit``, is re-raised.

    Args:
        table: the table the run loads (the ``table`` field; the freshness alerts group by it).
        job: the job's name (``etl_job``), or None.
        **fields: extra fields of the run's started and finished events.

    Raises:
        ValueError: ``table`` or ``job`` is empty, or a field has a name the events use.
    """
    return EtlRun(table, job, fields)
