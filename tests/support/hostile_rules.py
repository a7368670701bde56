"""Hostile rules files for the budget tests and bench/bench_hostile_feed.py."""

from __future__ import annotations

RULE_TAIL = "  desc: d\n  output: o\n  priority: WARNING\n"


def macro_bomb(levels: int = 40) -> str:
    """40 macros, each the previous one twice: 2**40 nodes once expanded as a tree."""
    text = "- macro: m0\n  condition: proc.name = x\n"
    for level in range(1, levels + 1):
        text += f"- macro: m{level}\n  condition: (m{level - 1} and m{level - 1})\n"
    return text + f"- rule: r\n  condition: evt.type = open and m{levels}\n" + RULE_TAIL


def list_bomb(levels: int = 40) -> str:
    """Lists defined before the lists they name: each substitution doubles the text."""
    text = "".join(
        f"- list: l{level}\n  items: [l{level - 1}, l{level - 1}]\n"
        for level in range(levels, 0, -1)
    )
    text += "- list: l0\n  items: [aaaa]\n"
    return (
        text + f"- rule: r\n  condition: evt.type = open and proc.name in (l{levels})\n" + RULE_TAIL
    )


def alias_bomb() -> str:
    """Billion laughs: 9 levels of 9 aliases, 10**9 nodes once walked (exceptions walk it)."""
    anchors = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    anchors += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return (
        "- " + "\n  ".join(anchors) + "\n- rule: r\n  condition: evt.type = open\n" + RULE_TAIL
        + "  exceptions:\n   - name: e\n     fields: proc.name\n     values: *a9\n"
    )  # fmt: skip


def costly_rules(rules: int = 15, level: int = 14) -> str:
    """Within every rules budget, but each rule compiles 2**level nodes: seconds of CPU and
    hundreds of MB, which the compile guard's limits (lowered in the test) refuse."""
    text = "- macro: m0\n  condition: ka.verb = x\n"
    for i in range(1, level + 1):
        text += f"- macro: m{i}\n  condition: (m{i - 1} and m{i - 1})\n"
    for r in range(rules):
        text += (
            f"- rule: r{r}\n  desc: d\n  condition: ka.verb = create and m{level} and "
            f"ka.user.name = u{r}\n  output: o\n  priority: WARNING\n  source: k8s_audit\n"
        )
    return text
