// falconet web UI. Every value from the server is put into the page with textContent (never
// innerHTML), so alert strings (attacker-controlled) render as text.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

async function api(path) {
  const answer = await fetch("/ui/api/" + path, { credentials: "same-origin" });
  if (answer.status === 401) {
    location.href = "/ui/login?next=" + encodeURIComponent(location.pathname);
    throw new Error("log in first");
  }
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || answer.statusText);
  return body;
}

function showError(target, error) {
  target.replaceChildren(el("p", { class: "error", role: "alert", text: String(error.message || error) }));
}

function timeText(ns) {
  if (ns === null || ns === undefined) return "";
  return new Date(Number(ns) / 1e6).toISOString().replace("T", " ").replace("Z", "");
}

function table(headers, rows, caption) {
  const head = el("tr", {}, ...headers.map((h) => el("th", { scope: "col", text: h })));
  const body = el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c)))));
  return el("div", { class: "scroll" }, el("table", {}, caption ? el("caption", { text: caption }) : null, el("thead", {}, head), body));
}

function badge(text, kind) {
  return el("span", { class: "badge " + (kind || String(text).toLowerCase().replace(/[^a-z_]/g, "")), text });
}

// -- Alerts ------------------------------------------------------------------------------------

const alertsState = { latestId: 0, rows: new Map(), fetching: false, again: false, source: null };

function filterQuery(extra = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData($("#filters"))) {
    if (key !== "live" && value) params.set(key, value);
  }
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  return params;
}

function alertRow(alert) {
  const open = el("button", { type: "button", class: "link", text: alert.rule, onclick: () => openDetail(alert.id) });
  const row = el("tr", { "data-id": alert.id, class: "p-" + alert.priority.toLowerCase() },
    el("td", { class: "nowrap", text: timeText(alert.time_ns) }),
    el("td", {}, badge(alert.priority)),
    el("td", {}, open),
    el("td", { text: alert.hostname }),
    el("td", { text: alert.source }),
    el("td", { class: "output", text: alert.output }));
  return row;
}

async function loadAlerts() {
  const body = $("#alerts tbody");
  try {
    const [list, stats] = await Promise.all([api("alerts?" + filterQuery()), api("stats?" + filterQuery())]);
    alertsState.rows.clear();
    alertsState.latestId = list.latest_id;
    body.replaceChildren(...list.alerts.map(alertRow));
    for (const a of list.alerts) alertsState.rows.set(a.id, a);
    renderStats(stats);
    $("#summary").textContent = `${stats.total} alerts match; showing the newest ${list.alerts.length}.`;
  } catch (error) {
    showError($("#summary"), error);
  }
}

async function loadNewAlerts() {
  if (alertsState.fetching) { alertsState.again = true; return; }
  alertsState.fetching = true;
  try {
    const list = await api("alerts?" + filterQuery({ after_id: alertsState.latestId }));
    alertsState.latestId = Math.max(alertsState.latestId, list.latest_id);
    const body = $("#alerts tbody");
    for (const alert of list.alerts.slice().reverse()) {
      if (alertsState.rows.has(alert.id)) continue;
      alertsState.rows.set(alert.id, alert);
      const row = alertRow(alert);
      row.classList.add("new");
      body.prepend(row);
    }
    while (body.rows.length > 500) body.lastElementChild.remove();
    if (list.alerts.length) renderStats(await api("stats?" + filterQuery()));
  } catch (error) {
    showError($("#summary"), error);
  } finally {
    alertsState.fetching = false;
    if (alertsState.again) { alertsState.again = false; loadNewAlerts(); }
  }
}

function renderStats(stats) {
  const figure = $("#chart");
  const width = 480, height = 120, counts = stats.counts;
  const top = Math.max(1, ...counts);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-label", `Alerts over time: ${stats.total} in ${counts.length} intervals, at most ${top} in one`);
  const step = width / counts.length;
  counts.forEach((count, index) => {
    const bar = document.createElementNS(ns, "rect");
    const h = Math.round((count / top) * height);
    bar.setAttribute("x", (index * step + 1).toFixed(1));
    bar.setAttribute("y", String(height - h));
    bar.setAttribute("width", Math.max(1, step - 2).toFixed(1));
    bar.setAttribute("height", String(h));
    const title = document.createElementNS(ns, "title");
    title.textContent = `${timeText(stats.start_ns + index * stats.bucket_ns)}: ${count}`;
    bar.append(title);
    svg.append(bar);
  });
  const axis = el("div", { class: "axis" },
    el("span", { text: timeText(stats.start_ns).slice(0, 16) }),
    el("span", { text: timeText(stats.start_ns + counts.length * stats.bucket_ns).slice(0, 16) }));
  figure.replaceChildren(el("figcaption", { text: `Alerts over time (max ${top} per interval)` }), svg, axis);
  for (const [id, items] of [["#top-rules", stats.top_rules], ["#top-hosts", stats.top_hosts]]) {
    $(id).replaceChildren(...items.map((item) => el("li", {}, el("span", { text: item.name || "(none)" }), " ", el("span", { class: "count", text: item.count }))));
  }
}

async function openDetail(id) {
  const dialog = $("#detail");
  let alert;
  try {
    alert = await api("alerts/" + encodeURIComponent(id));
  } catch (error) {
    showError($("#summary"), error);
    return;
  }
  const doc = alert.document;
  $("#detail-title").textContent = `${doc.priority}: ${doc.rule}`;
  const rows = [];
  for (const key of ["time", "rule", "priority", "source", "hostname", "tags", "output"]) {
    const value = Array.isArray(doc[key]) ? doc[key].join(", ") : doc[key];
    rows.push(el("tr", {}, el("th", { scope: "row", text: key }), el("td", { text: value ?? "" })));
  }
  for (const [key, value] of Object.entries(doc.output_fields || {})) {
    const text = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
    rows.push(el("tr", {}, el("th", { scope: "row", text: key }), el("td", { text })));
  }
  $("#detail-fields tbody").replaceChildren(...rows);
  $("#detail-responses").replaceChildren(...(alert.responses.length ? alert.responses.map((r) => el("li", { text: r.output })) : [el("li", { text: "none" })]));
  $("#detail-json").textContent = JSON.stringify(doc, null, 2);
  dialog.showModal();
  $("#close-detail").focus();
}

async function copyJson() {
  const text = $("#detail-json").textContent;
  const button = $("#copy-json");
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (error) {
    const range = document.createRange();
    range.selectNodeContents($("#detail-json"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { button.textContent = "Copy as JSON"; }, 2000);
}

function setLive(on) {
  if (alertsState.source) { alertsState.source.close(); alertsState.source = null; }
  if (!on) return;
  const source = new EventSource("/ui/api/stream");
  source.addEventListener("alerts", (event) => {
    const latest = JSON.parse(event.data).latest_id;
    if (latest > alertsState.latestId) loadNewAlerts();
  });
  alertsState.source = source;
}

function initAlerts() {
  const form = $("#filters");
  const params = new URLSearchParams(location.search);
  for (const element of form.elements) {
    if (element.name && params.has(element.name) && element.type !== "checkbox") element.value = params.get(element.name);
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    history.replaceState(null, "", "?" + filterQuery());
    loadAlerts();
  });
  form.addEventListener("reset", () => setTimeout(() => { history.replaceState(null, "", location.pathname); loadAlerts(); }));
  form.elements.live.addEventListener("change", (event) => setLive(event.target.checked));
  $("#copy-json").addEventListener("click", copyJson);
  $("#close-detail").addEventListener("click", () => $("#detail").close());
  loadAlerts().then(() => setLive(form.elements.live.checked));
}

// -- Feeds -------------------------------------------------------------------------------------

function feedsTable(feeds) {
  const rows = feeds.artifacts.map((a) => [
    el("span", {}, el("strong", { text: a.name }), el("br"), el("small", { text: a.ref })),
    a.version,
    el("code", { class: "digest", title: a.digest, text: a.digest.slice(0, 19) + "…" }),
    el("span", {}, badge(a.signature.verdict), " ", el("small", { text: a.signature.key || "" })),
    a.followed ? feeds.follow.schedule : "not followed",
    a.last_check ? el("span", {}, timeText(a.last_check.time * 1e9), " ", badge(a.last_check.status)) : "—",
    a.last_good ? a.last_good.version : "—",
    a.rollback ? el("code", { text: a.rollback }) : "—",
  ]);
  if (!rows.length) return el("p", { text: "No artifacts installed." });
  return table(["Artifact", "Version", "Digest", "Signature", "Follow", "Last check", "Last good", "Rollback"], rows);
}

async function initFeeds() {
  const content = $("#content");
  try {
    const body = await api("feeds");
    const parts = [el("h2", { text: "This host" }), feedsTable(body.local)];
    for (const node of body.nodes) {
      parts.push(el("h2", {}, "Node ", el("span", { text: node.hostname }), " ", el("small", { text: "reported " + timeText(node.received_ns) })));
      if (node.feeds) parts.push(feedsTable(node.feeds));
      if (node.compliance) {
        parts.push(table(["Framework", "Controls covered", "Coverage"], node.compliance.map((c) => [c.name, `${c.covered}/${c.controls}`, `${c.coverage_percent}%`])));
      }
    }
    content.replaceChildren(...parts);
  } catch (error) {
    showError(content, error);
  }
}

// -- Compliance ----------------------------------------------------------------------------------

async function loadCompliance(framework) {
  const content = $("#content");
  content.replaceChildren(el("p", { text: "Computing coverage…" }));
  try {
    const report = await api("compliance?framework=" + encodeURIComponent(framework));
    const t = report.totals;
    const summary = el("p", { class: "totals", text: `${report.framework.name} ${report.framework.version}: ${t.covered}/${t.controls} controls covered (${t.coverage_percent}%), ${t.rules_mapped} of ${t.rules} rules mapped` });
    const families = table(["Family", "Covered"], report.families.map((f) => [`${f.id} ${f.title}`, `${f.covered}/${f.controls}`]));
    const rows = report.controls.map((c) => {
      const rules = c.rules.length ? el("details", {}, el("summary", { text: `${c.rules.length} rules` }),
        el("ul", {}, ...c.rules.map((name) => {
          const ref = report.rules[name] || {};
          const tags = (report.rule_tags || {})[name] || [];
          return el("li", {}, el("span", { text: name }), " ", el("small", { text: [ref.priority, ref.source, ref.enabled === false ? "disabled" : ""].filter(Boolean).join(" · ") }),
            tags.length ? el("div", { class: "tags", text: tags.join(", ") }) : null);
        }))) : "—";
      return [c.id, c.title, rules];
    });
    content.replaceChildren(summary, el("h2", { text: "Families" }), families, el("h2", { text: "Controls" }), table(["Control", "Title", "Rules"], rows));
  } catch (error) {
    showError(content, error);
  }
}

async function initCompliance() {
  const select = $("#framework");
  try {
    const body = await api("frameworks");
    select.replaceChildren(...body.frameworks.map((f) => el("option", { value: f.id, text: `${f.name} (${f.controls} controls)` })));
    const wanted = new URLSearchParams(location.search).get("framework");
    if (wanted && body.frameworks.some((f) => f.id === wanted)) select.value = wanted;
    select.addEventListener("change", () => {
      history.replaceState(null, "", "?framework=" + encodeURIComponent(select.value));
      loadCompliance(select.value);
    });
    loadCompliance(select.value);
  } catch (error) {
    showError($("#content"), error);
  }
}

// -- Responses, Rules ------------------------------------------------------------------------------

async function initResponses() {
  const content = $("#content");
  try {
    const body = await api("responses");
    if (!body.responses.length) { content.replaceChildren(el("p", { text: "No response outcomes stored." })); return; }
    content.replaceChildren(table(["Time", "Status", "Action", "Response rule", "Alert", "Host", "Detail"], body.responses.map((r) => [
      timeText(r.time_ns), badge(r.status || "?"), r.action || "", r.response_rule || "",
      r.alert_id ? el("a", { href: "/ui/alerts?range=all&rule=" + encodeURIComponent(r.alert_rule || ""), text: r.alert_rule || "" }) : (r.alert_rule || ""),
      r.hostname, r.error || r.output,
    ])));
  } catch (error) {
    showError(content, error);
  }
}

async function initRules() {
  const content = $("#content");
  try {
    const body = await api("rules");
    content.replaceChildren(el("p", { text: `${body.rules.length} rules loaded.` }), table(["Rule", "Source", "Priority", "Tags", "Enabled", "Alerts"], body.rules.map((r) => [
      el("span", {}, el("span", { text: r.name }), el("br"), el("small", { text: r.file })), r.source, r.priority || "",
      r.tags.join(", "), r.enabled ? "yes" : "no",
      r.alerts ? el("a", { href: "/ui/alerts?range=all&rule=" + encodeURIComponent(r.name), text: r.alerts }) : "0",
    ])));
  } catch (error) {
    showError(content, error);
  }
}

const PAGES = { alerts: initAlerts, feeds: initFeeds, compliance: initCompliance, responses: initResponses, rules: initRules };
document.addEventListener("DOMContentLoaded", () => {
  const init = PAGES[document.body.dataset.page];
  if (init) init();
});
