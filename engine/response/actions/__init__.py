"""Built-in response actions; each module registers its actions on import."""

from __future__ import annotations

import importlib

# Keep sorted. A new action is one module here + one entry.
ACTION_MODULES: list[str] = [
    "engine.response.actions.aws_lambda",
    "engine.response.actions.exec_script",
    "engine.response.actions.file_quarantine",
    "engine.response.actions.http_webhook",
    "engine.response.actions.kubernetes",
    "engine.response.actions.network_block",
    "engine.response.actions.process_terminate",
]

_loaded = False


def load_builtin_actions() -> None:
    global _loaded
    if _loaded:
        return
    for module in ACTION_MODULES:
        importlib.import_module(module)
    _loaded = True
