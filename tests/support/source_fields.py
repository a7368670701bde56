"""Field extraction for the source tests: `extract("k8s_audit", "ka.uri.param[command]", event)`."""

from __future__ import annotations

from typing import Any

from engine.fields import catalog


def extract(source: str, field: str, event: Any) -> Any:
    name, _, arg = field.partition("[")
    fields = catalog(source)
    assert fields is not None, source
    _, extractor = fields.extractor(name, arg[:-1] if arg else None)
    return extractor(event)
