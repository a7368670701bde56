"""The alert store's tables and their versioned migrations (one schema for SQLite and
PostgreSQL, through SQLAlchemy Core).

`falconet_schema` holds one row per applied migration. A store opened by an older falconet
gets the newer migrations applied in order, inside one transaction each; a store written by a
newer falconet (a version this one does not know) is refused rather than misread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    select,
)

from ui.errors import StoreError

# SQLite's rowid alias must be INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
RowId = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData()

schema_versions = Table(
    "falconet_schema",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_ns", BigInteger, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("time_ns", BigInteger, nullable=False),  # the alert's own time
    Column("received_ns", BigInteger, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("priority_level", SmallInteger, nullable=False),  # 0 Emergency .. 7 Debug
    Column("rule", String(512), nullable=False),
    Column("source", String(512), nullable=False),
    Column("hostname", String(512), nullable=False),
    Column("tags", Text, nullable=False),  # "|a|b|"
    Column("output", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("alert_rule", String(512)),  # response outcomes: the rule of the alert acted on
    Column("alert_id", RowId),  # ... and that alert, when the store has it
)

# The filters the alerts page offers, each newest first.
ALERT_INDEXES = (
    # Newest first, and the page's counts and top rules/hosts over a time range read from
    # this index alone (it covers them), never from the wide rows.
    Index("alerts_time", alerts.c.time_ns, alerts.c.rule, alerts.c.hostname),
    Index("alerts_received", alerts.c.received_ns),  # retention by age: time in the store
    Index("alerts_rule_time", alerts.c.rule, alerts.c.time_ns),
    Index("alerts_host_time", alerts.c.hostname, alerts.c.time_ns),
    Index("alerts_priority_time", alerts.c.priority_level, alerts.c.time_ns),
    Index("alerts_source_time", alerts.c.source, alerts.c.time_ns),
)

# The whole alert JSON, apart: a scan of the alerts table (free text over the output) reads
# narrow rows, ~8x less than with the documents inline.
alert_documents = Table(
    "alert_documents",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=False),  # alerts.id
    Column("document", Text, nullable=False),
)

nodes = Table(
    "nodes",
    metadata,
    Column("hostname", String(512), primary_key=True),
    Column("received_ns", BigInteger, nullable=False),
    Column("document", Text, nullable=False),  # the node's last status document (docs/ui.md)
)


def _v1(connection: Connection) -> None:
    for table in (alerts, alert_documents, nodes):
        table.create(connection, checkfirst=True)  # creates its indexes too


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [(1, _v1)]
LATEST = MIGRATIONS[-1][0]


def current_version(connection: Connection) -> int:
    schema_versions.create(connection, checkfirst=True)
    found = connection.execute(select(schema_versions.c.version)).scalars().all()
    return max(found, default=0)


def migrate(connection: Connection) -> int:
    """Apply the migrations this store lacks; returns the version it is at."""
    version = current_version(connection)
    if version > LATEST:
        raise StoreError(
            f"the alert store is at schema version {version}, newer than this falconet ({LATEST})",
            "upgrade falconet, or point --store at another database",
        )
    for number, step in MIGRATIONS:
        if number > version:
            step(connection)
            connection.execute(
                schema_versions.insert().values(version=number, applied_ns=time.time_ns())
            )
            version = number
    return version
