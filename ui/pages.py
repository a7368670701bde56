"""The pages' HTML: a static shell per page (navigation, landmarks, the alerts filter form);
app.js fills it from the JSON API with DOM text nodes, so alert strings are never parsed as
HTML. The few server-side values are escaped here."""

from __future__ import annotations

from html import escape

from engine.output import Priority

PAGES = {
    "alerts": "Alerts",
    "feeds": "Feeds",
    "compliance": "Compliance",
    "responses": "Responses",
    "rules": "Rules",
}

PRIORITIES = tuple(priority.falco_name for priority in Priority)  # most severe first
RANGE_CHOICES = (
    ("15m", "Last 15 minutes"),
    ("1h", "Last hour"),
    ("6h", "Last 6 hours"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("all", "All time"),
)


def _options(choices: tuple[tuple[str, str], ...], selected: str) -> str:
    return "".join(
        f'<option value="{escape(v)}"{" selected" if v == selected else ""}>{escape(t)}</option>'
        for v, t in choices
    )


def _alerts_main() -> str:
    priorities = _options((("", "Any priority"), *((p, f"{p} or more") for p in PRIORITIES)), "")
    fields = "".join(
        f'<label>{label}<input name="{name}" type="search" maxlength="256" '
        f'autocomplete="off"></label>'
        for name, label in (
            ("rule", "Rule"),
            ("source", "Source"),
            ("hostname", "Host"),
            ("tag", "Tag"),
            ("text", "Text"),
        )
    )
    return f"""
<h1>Alerts</h1>
<form id="filters" role="search" aria-label="Filter alerts">
  <label>Time<select name="range">{_options(RANGE_CHOICES, "24h")}</select></label>
  <label>Priority<select name="priority">{priorities}</select></label>
  {fields}
  <div class="buttons">
    <button type="submit">Apply</button>
    <button type="reset">Reset</button>
    <label class="inline"><input type="checkbox" name="live" checked> Live</label>
  </div>
</form>
<p id="summary" role="status" aria-live="polite"></p>
<section class="overview" aria-label="Overview">
  <figure id="chart"><figcaption>Alerts over time</figcaption></figure>
  <div><h2>Top rules</h2><ol id="top-rules" class="tops"></ol></div>
  <div><h2>Top hosts</h2><ol id="top-hosts" class="tops"></ol></div>
</section>
<div class="scroll"><table id="alerts">
  <caption class="sr-only">Alerts, newest first</caption>
  <thead><tr><th scope="col">Time</th><th scope="col">Priority</th><th scope="col">Rule</th>
  <th scope="col">Host</th><th scope="col">Source</th><th scope="col">Output</th></tr></thead>
  <tbody></tbody>
</table></div>
<dialog id="detail" aria-labelledby="detail-title">
  <h2 id="detail-title">Alert</h2>
  <table id="detail-fields"><tbody></tbody></table>
  <h3>Responses</h3><ul id="detail-responses"></ul>
  <h3>JSON</h3><pre id="detail-json" tabindex="0"></pre>
  <div class="buttons"><button type="button" id="copy-json">Copy as JSON</button>
  <button type="button" id="close-detail">Close</button></div>
</dialog>"""


def _generic_main(page: str) -> str:
    extra = ""
    if page == "compliance":
        extra = (
            '<form id="framework-form"><label>Framework <select name="framework" '
            'id="framework"></select></label></form>'
        )
    return f'<h1>{escape(PAGES[page])}</h1>{extra}<div id="content" aria-live="polite"></div>'


def page_html(page: str, user: str | None, csrf: str) -> str:
    nav = "".join(
        f'<a href="/ui/{name}"{" aria-current=page" if name == page else ""}>{title}</a>'
        for name, title in PAGES.items()
    )
    logout = ""
    if user:
        logout = (
            f'<form method="post" action="/ui/logout" class="logout">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f'<span>{escape(user)}</span> <button type="submit">Log out</button></form>'
        )
    main = _alerts_main() if page == "alerts" else _generic_main(page)
    return _document(
        PAGES[page],
        page,
        f'<header><nav aria-label="Main"><span class="brand">falconet</span>{nav}</nav>'
        f'{logout}</header><main id="main" tabindex="-1">{main}</main>',
    )


def login_html(csrf: str, next_path: str, failed: bool) -> str:
    error = '<p class="error" role="alert">Wrong user or password.</p>' if failed else ""
    body = f"""<main id="main" class="login"><h1>falconet</h1>{error}
<form method="post" action="/ui/login">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<input type="hidden" name="next" value="{escape(next_path)}">
<label>User<input name="user" autocomplete="username" required autofocus></label>
<label>Password<input name="password" type="password" autocomplete="current-password"
required></label><button type="submit">Log in</button></form></main>"""
    return _document("Log in", "login", body)


def _document(title: str, page: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>falconet · {escape(title)}</title>
<link rel="stylesheet" href="/ui/static/app.css">
<script src="/ui/static/app.js" defer></script></head>
<body data-page="{escape(page)}"><a class="skip" href="#main">Skip to content</a>
{body}</body></html>
"""
