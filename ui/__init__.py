"""falconet's web UI: the alert store, fleet ingest, and the pages that show alerts, feeds,
compliance coverage, response outcomes and rules (docs/ui.md)."""
