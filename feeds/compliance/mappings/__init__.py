"""Mapping data files (YAML, validated by schemas/compliance-mapping.schema.json)."""
