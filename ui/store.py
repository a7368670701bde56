"""The alert store: SQLite by default (one file, WAL), PostgreSQL for a fleet; the same schema
(ui.schema) and the same queries through SQLAlchemy Core.

Writes come in batches from one writer (ui.ingest); reads run on the page's threads. Retention
deletes by age and by total stored size, oldest first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    literal,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from engine.output import Priority
from ui.alerts import AlertRow
from ui.errors import StoreError, UsageError
from ui.schema import alert_documents, alerts, migrate, nodes

MAX_PAGE = 500  # alerts in one answer
MAX_FILTER = 256  # characters of one filter value
NS = 1_000_000_000

RANGES = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


def engine_url(store: str) -> str:
    """`--store` as a SQLAlchemy URL: a path (SQLite), sqlite:///..., or postgresql://..."""
    if store.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + store.split("://", 1)[1]
    if store.startswith(("postgresql+psycopg://", "sqlite://")):
        return store
    if "://" in store:
        raise UsageError(
            f"--store {store.split('://', 1)[0]}://...: unsupported database",
            "use a file path (SQLite) or postgresql://USER@HOST:PORT/DB",
        )
    return f"sqlite:///{Path(store).expanduser().absolute()}"


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it consistent
    cursor.execute("PRAGMA busy_timeout=5000")
    # Scans (free text over a day of alerts) read the file through a mapping instead of one
    # read() per page: a third less CPU. Address space only; the kernel's page cache holds it.
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.close()


@dataclass(frozen=True)
class Retention:
    max_age_s: float | None = 30 * 86400
    max_bytes: int | None = 1 << 30  # stored alert documents, all together


@dataclass(frozen=True)
class AlertFilter:
    """What the alerts page filters by; every value bounded. `priority`: the least severe
    level shown (Falco's minimum priority)."""

    since_ns: int | None = None
    until_ns: int | None = None
    priority: int | None = None
    rule: str = ""
    source: str = ""
    hostname: str = ""
    tag: str = ""
    text: str = ""
    after_id: int | None = None
    limit: int = 100

    @classmethod
    def from_query(cls, params: Mapping[str, str], now_ns: int | None = None) -> AlertFilter:
        """From the page's query string; UsageError (400) on a value out of its domain."""
        now_ns = now_ns if now_ns is not None else time.time_ns()
        values: dict[str, Any] = {}
        for key in ("rule", "source", "hostname", "tag", "text"):
            value = params.get(key, "").strip()
            if len(value) > MAX_FILTER:
                raise UsageError(f"filter {key} longer than {MAX_FILTER} characters")
            values[key] = value
        range_name = params.get("range", "")
        if range_name and range_name != "all":
            if range_name not in RANGES:
                raise UsageError(f"range {range_name!r}: use one of {', '.join(RANGES)}, all")
            values["since_ns"] = now_ns - RANGES[range_name] * NS
        for key in ("since", "until"):
            if params.get(key):
                from ui.alerts import parse_time

                try:
                    values[f"{key}_ns"] = parse_time(params[key], now_ns)
                except Exception as error:
                    raise UsageError(f"{key}: {error}") from None
        if params.get("priority"):
            try:
                values["priority"] = int(Priority.parse(params["priority"]))
            except ValueError as error:
                raise UsageError(str(error)) from None
        for key in ("after_id", "limit"):
            if params.get(key):
                if not params[key].isdigit():
                    raise UsageError(f"{key} must be a number")
                values[key] = int(params[key])
        values["limit"] = max(1, min(values.get("limit", 100), MAX_PAGE))
        return cls(**values)

    def conditions(self, dialect: str = "sqlite") -> list[ColumnElement[bool]]:
        c = alerts.c
        found: list[ColumnElement[bool]] = []
        if self.since_ns is not None:
            found.append(c.time_ns >= self.since_ns)
        if self.until_ns is not None:
            found.append(c.time_ns <= self.until_ns)
        if self.priority is not None:
            found.append(c.priority_level <= self.priority)
        for column, value in ((c.rule, self.rule), (c.source, self.source)):
            if value:
                found.append(column == value)
        if self.hostname:
            found.append(c.hostname == self.hostname)
        if self.tag:
            found.append(c.tags.contains(f"|{self.tag}|", autoescape=True))
        if self.text:
            # SQLite's LIKE already ignores ASCII case (lower() on every row would double the
            # cost of the scan); PostgreSQL's needs ILIKE.
            if dialect == "sqlite":
                found.append(c.output.contains(self.text, autoescape=True))
            else:
                found.append(c.output.icontains(self.text, autoescape=True))
        if self.after_id is not None:
            found.append(c.id > self.after_id)
        return found


SUMMARY_COLUMNS = (
    alerts.c.id,
    alerts.c.time_ns,
    alerts.c.priority,
    alerts.c.rule,
    alerts.c.source,
    alerts.c.hostname,
    alerts.c.tags,
    alerts.c.output,
    alerts.c.alert_id,
)


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "time_ns": row.time_ns,
        "priority": row.priority,
        "rule": row.rule,
        "source": row.source,
        "hostname": row.hostname,
        "tags": [t for t in row.tags.split("|") if t],
        "output": row.output,
        "alert_id": row.alert_id,
    }


@dataclass
class StoreStats:
    inserted: int = 0
    pruned_age: int = 0
    pruned_size: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class AlertStore:
    def __init__(self, store: str, retention: Retention | None = None) -> None:
        self.url = engine_url(store)
        self.dialect = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        self.retention = retention or Retention()
        self.stats = StoreStats()
        try:
            if self.dialect == "sqlite":
                Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                self.engine: Engine = create_engine(
                    self.url, connect_args={"check_same_thread": False, "timeout": 5}
                )
                event.listen(self.engine, "connect", _sqlite_pragmas)
            else:
                self.engine = create_engine(
                    self.url, pool_size=8, max_overflow=8, pool_pre_ping=True
                )
            with self.engine.begin() as connection:
                self.version = migrate(connection)
            self.analyze()
        except SQLAlchemyError as error:
            raise StoreError(
                f"cannot open the alert store {self.safe_url}: {_reason(error)}",
                "check --store (a writable path, or a reachable postgresql:// URL)",
            ) from None

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    # -- writes ---------------------------------------------------------------------------

    def insert(self, rows: Iterable[AlertRow], received_ns: int | None = None) -> int:
        """One transaction for the batch; response outcomes get linked to the alert they
        acted on (the latest alert of that rule on that host, at or before the outcome)."""
        received_ns = received_ns or time.time_ns()
        batch = list(rows)
        values = [row.as_values(received_ns) for row in batch]
        if not values:
            return 0
        with self.engine.begin() as connection:
            for value in values:
                if value["alert_rule"]:
                    value["alert_id"] = connection.execute(
                        select(func.max(alerts.c.id)).where(
                            alerts.c.rule == value["alert_rule"],
                            alerts.c.hostname == value["hostname"],
                            alerts.c.time_ns <= value["time_ns"],
                        )
                    ).scalar()
                else:
                    value["alert_id"] = None
            idents = self._new_ids(connection, len(values))
            for ident, value in zip(idents, values, strict=True):
                value["id"] = ident
            connection.execute(alerts.insert(), values)
            documents = [
                {"id": ident, "document": row.document}
                for ident, row in zip(idents, batch, strict=True)
            ]
            connection.execute(alert_documents.insert(), documents)
        self.stats.inserted += len(values)
        return len(values)

    def _new_ids(self, connection: Any, count: int) -> list[int]:
        """Ids for a batch, known before the insert so that the documents table gets them too
        (cheaper than INSERT ... RETURNING). PostgreSQL: from the column's sequence (safe with
        several UIs on one database); SQLite: after the largest (one UI writes a SQLite file,
        and the batch's transaction is the only writer)."""
        if self.dialect == "postgresql":
            return list(
                connection.exec_driver_sql(
                    "SELECT nextval(pg_get_serial_sequence('alerts', 'id')) "
                    "FROM generate_series(1, %(n)s)",
                    {"n": count},
                ).scalars()
            )
        start = connection.execute(select(func.coalesce(func.max(alerts.c.id), 0))).scalar()
        return list(range(start + 1, start + 1 + count))

    def prune(self, now_ns: int | None = None) -> int:
        """Retention: delete alerts older than max_age, then the oldest until the stored size is
        under max_bytes. Returns how many were deleted."""
        now_ns = now_ns or time.time_ns()
        deleted = 0
        with self.engine.begin() as connection:
            if self.retention.max_age_s is not None:
                cutoff = now_ns - int(self.retention.max_age_s * NS)
                result = connection.execute(delete(alerts).where(alerts.c.received_ns < cutoff))
                self.stats.pruned_age += result.rowcount
                deleted += result.rowcount
            if self.retention.max_bytes is not None:
                deleted += self._prune_size(connection, self.retention.max_bytes)
        return deleted

    def _prune_size(self, connection: Any, max_bytes: int) -> int:
        total = connection.execute(select(func.coalesce(func.sum(alerts.c.size), 0))).scalar()
        if total <= max_bytes:
            return 0
        # Oldest first, down to 90% of the cap so that pruning is not due again at once.
        excess = total - int(max_bytes * 0.9)
        running = func.sum(alerts.c.size).over(order_by=alerts.c.id).label("running")
        ranked = select(alerts.c.id, running).subquery()
        cutoff = connection.execute(
            select(func.min(ranked.c.id)).where(ranked.c.running >= excess)
        ).scalar()
        if cutoff is None:
            return 0
        connection.execute(delete(alert_documents).where(alert_documents.c.id <= cutoff))
        result = connection.execute(delete(alerts).where(alerts.c.id <= cutoff))
        self.stats.pruned_size += result.rowcount
        return int(result.rowcount)

    def analyze(self) -> None:
        """Refresh SQLite's planner statistics (sampled: tens of ms on a million alerts), so a
        time range is read from the time index rather than a whole (rule, time) index.
        PostgreSQL's autovacuum keeps its own."""
        if self.dialect != "sqlite":
            return
        with self.engine.begin() as connection:
            connection.exec_driver_sql("PRAGMA analysis_limit=1000")
            connection.exec_driver_sql("ANALYZE")

    def put_node(self, hostname: str, document: dict[str, Any], now_ns: int | None = None) -> None:
        """A node's status document (falconet run --report-to): the last one is kept."""
        now_ns = now_ns or time.time_ns()
        text = json.dumps(document, sort_keys=True)
        with self.engine.begin() as connection:
            updated = connection.execute(
                nodes.update()
                .where(nodes.c.hostname == hostname)
                .values(received_ns=now_ns, document=text)
            ).rowcount
            if not updated:
                connection.execute(
                    nodes.insert().values(hostname=hostname, received_ns=now_ns, document=text)
                )

    # -- reads ----------------------------------------------------------------------------

    def alerts(self, where: AlertFilter) -> list[dict[str, Any]]:
        """Newest first, at most where.limit."""
        query = (
            select(*SUMMARY_COLUMNS)
            .where(and_(True, *where.conditions(self.dialect)))
            .order_by(alerts.c.time_ns.desc())  # the time indexes give this order: no sort
            .limit(where.limit)
        )
        with self.engine.connect() as connection:
            return [_summary(row) for row in connection.execute(query)]

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        """One alert with its whole document, and the response outcomes linked to it."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(*SUMMARY_COLUMNS, alert_documents.c.document, alerts.c.received_ns)
                .join(alert_documents, alert_documents.c.id == alerts.c.id)
                .where(alerts.c.id == alert_id)
            ).first()
            if row is None:
                return None
            responses = connection.execute(
                select(*SUMMARY_COLUMNS)
                .where(alerts.c.alert_id == alert_id)
                .order_by(alerts.c.id)
                .limit(MAX_PAGE)
            ).all()
        found = _summary(row)
        found["document"] = json.loads(row.document)
        found["received_ns"] = row.received_ns
        found["responses"] = [_summary(r) for r in responses]
        return found

    def latest_id(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.coalesce(func.max(alerts.c.id), 0))).scalar())

    def stats_for(self, where: AlertFilter, now_ns: int | None = None, buckets: int = 48) -> dict:
        """Counts over time (`buckets` equal spans over the filtered range), top rules and hosts,
        and the total."""
        now_ns = now_ns or time.time_ns()
        conditions = and_(True, *where.conditions(self.dialect))
        with self.engine.connect() as connection:
            total, oldest = connection.execute(
                select(func.count(), func.min(alerts.c.time_ns)).where(conditions)
            ).one()
            start = where.since_ns if where.since_ns is not None else (oldest or now_ns)
            end = where.until_ns if where.until_ns is not None else now_ns
            span = max(end - start, NS)
            width = -(-span // buckets)
            bucket = ((alerts.c.time_ns - literal(start)) // literal(width)).label("bucket")
            counts = connection.execute(
                select(bucket, func.count()).where(conditions).group_by(bucket)
            ).all()
            tops = {}
            for name, column in (("rules", alerts.c.rule), ("hosts", alerts.c.hostname)):
                tops[name] = [
                    {"name": value, "count": count}
                    for value, count in connection.execute(
                        select(column, func.count().label("n"))
                        .where(conditions)
                        .group_by(column)
                        .order_by(func.count().desc(), column)
                        .limit(10)
                    )
                ]
        series = [0] * buckets
        for index, count in counts:
            if index is not None and 0 <= int(index) < buckets:
                series[int(index)] += count
        return {
            "total": total,
            "start_ns": start,
            "bucket_ns": width,
            "counts": series,
            "top_rules": tops["rules"],
            "top_hosts": tops["hosts"],
        }

    def counts_by_rule(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return dict(
                connection.execute(
                    select(alerts.c.rule, func.count()).group_by(alerts.c.rule)
                ).all()
            )

    def nodes(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(nodes).order_by(nodes.c.hostname)).all()
        return [
            {"hostname": r.hostname, "received_ns": r.received_ns, **json.loads(r.document)}
            for r in rows
        ]

    def responses(self, limit: int = 200) -> list[dict[str, Any]]:
        """Response outcomes (source `response`), newest first, with the alert each acted on."""
        where = AlertFilter(source="response", limit=min(limit, MAX_PAGE))
        found = self.alerts(where)
        ids = [r["id"] for r in found]
        if not ids:
            return found
        with self.engine.connect() as connection:
            documents = dict(
                connection.execute(
                    select(alert_documents.c.id, alert_documents.c.document).where(
                        alert_documents.c.id.in_(ids)
                    )
                ).all()
            )
        for item in found:
            fields = json.loads(documents[item["id"]]).get("output_fields") or {}
            item["action"] = fields.get("response.action")
            item["status"] = fields.get("response.status")
            item["response_rule"] = fields.get("response.rule")
            item["alert_rule"] = fields.get("alert.rule")
            item["error"] = fields.get("response.error")
        self._link_late_alerts(found)
        return found

    def _link_late_alerts(self, found: list[dict[str, Any]]) -> None:
        """An outcome stored before its alert (posts from a fleet arrive in any order, and a
        node posts outcomes and alerts separately) is linked when read: the latest alert of
        that rule on that host at or before the outcome."""
        late = [item for item in found if item.get("alert_id") is None and item["alert_rule"]]
        if not late:
            return
        with self.engine.connect() as connection:
            for item in late:
                item["alert_id"] = connection.execute(
                    select(func.max(alerts.c.id)).where(
                        alerts.c.rule == item["alert_rule"],
                        alerts.c.hostname == item["hostname"],
                        alerts.c.time_ns <= item["time_ns"],
                    )
                ).scalar()


def _reason(error: SQLAlchemyError) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0] if text else type(error).__name__
