"""Response actions: rules that act on alerts (terminate, block, quarantine, webhook, script,
Kubernetes, AWS Lambda), in the manner of Falco Talon.

- `rules.load_rules(path) -> ResponseRules` (schemas/response.schema.json)
- `engine.ResponseEngine(rules, on_outcome)`: `submit(alert)` from the detection loop,
  `handle(alert)`, `plan(alert)`, `swap(rules)`, `close()`
- `actions/`: the action plug-ins, registered by name (`actions.base.register_action`)
"""
