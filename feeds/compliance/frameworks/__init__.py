"""Framework catalogue data files (YAML, validated by schemas/compliance-catalogue.schema.json)."""
