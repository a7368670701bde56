"""Command-line shell: parses arguments, calls one core function, renders the result."""
