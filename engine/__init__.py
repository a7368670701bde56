"""Detection engine: Falco rules language, rulesets, event sources, outputs."""
