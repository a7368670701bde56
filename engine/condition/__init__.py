"""The Falco condition language: parser (AST), compiler, event-type derivation."""
