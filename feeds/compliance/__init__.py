"""Compliance-aware feeds: framework catalogue, tag grammar, mappings, overlay, selection, reports.

Entry points for other packages: `selection.select_rules`, `selection.write_selection`,
`operations.write_selection_files`, `operations.frameworks_covered` (see docs/compliance.md).
"""
