// The operator console: a small single-page front end over the JSON routes of the same API.
// No build step, no external resources. Pages are chosen by the address, so each can be shared.
"use strict";

// ---- where the API is: behind a named API Gateway stage every address starts with /<stage>;
// the server writes that prefix into the page (empty locally) ---------------------------------
const BASE = document.documentElement.dataset.base || "";
/** The console address of this page without the stage prefix (`/console/...`). */
const here = () => (location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname);

// ---- session: tenant, local scopes, token ---------------------------------------------------
const store = window.sessionStorage;
const query = new URLSearchParams(location.search);
for (const key of ["tenant", "scopes", "principal"]) {
  if (query.has(key)) store.setItem(key, query.get(key));
}
const session = {
  get tenant() { return store.getItem("tenant") || ""; },
  // null: no X-Scopes header (a local request then holds every scope).
  get scopes() { const s = store.getItem("scopes"); return s === null || s === "" ? null : s; },
  get token() { return store.getItem("token") || ""; },
};

/** The pasted access token's claims (not verified here: API Gateway verifies it), or null. */
function tokenClaims() {
  if (!session.token) return null;
  try {
    const part = session.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch (_) { return null; }
}
const EVERY_SCOPE = ["events:write", "events:read", "ops:replay", "ops:dead-letters", "ops:handlers", "subscriptions:admin"];

/** The scopes this session holds, as the server will judge them (the token's `scope` claim,
 * or the `scp` list some issuers write). */
function heldScopes() {
  if (session.token) {
    const claims = tokenClaims() || {};
    const raw = claims.scope !== undefined ? claims.scope : claims.scp;
    return (Array.isArray(raw) ? raw.map(String) : String(raw || "").split(/\s+/)).filter(Boolean);
  }
  if (session.scopes === null) return EVERY_SCOPE;
  return session.scopes.split(/[\s,]+/).filter(Boolean);
}
const holds = (scope) => heldScopes().includes(scope);

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (session.token) h["Authorization"] = "Bearer " + session.token;
  if (session.tenant) h["X-Tenant-Id"] = session.tenant;
  if (session.scopes !== null) h["X-Scopes"] = session.scopes;
  const principal = store.getItem("principal");
  if (principal) h["X-Principal"] = principal;
  return h;
}

/** A console address that carries the session (so it can be opened in another tab or shared). */
function href(path, params) {
  const q = new URLSearchParams(params || {});
  if (session.tenant) q.set("tenant", session.tenant);
  if (session.scopes !== null) q.set("scopes", session.scopes);
  const s = q.toString();
  return BASE + path + (s ? "?" + s : "");
}

async function api(method, path, body) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  const r = await fetch(BASE + path, init);
  let data = null;
  try { data = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    // API Gateway's own refusals (the JWT authorizer's 401) say {"message": ...}.
    const e = (data && data.error) || { message: data && data.message };
    const err = new Error(`${r.status} ${e.code || ""}: ${e.message || r.statusText}`);
    err.status = r.status;
    throw err;
  }
  return data;
}

/** Sign in with an access token (the JWT the API takes): kept for this browser tab only
 * (sessionStorage) and sent as `Authorization: Bearer`. Shown when the API answers 401. */
function signInPanel(why) {
  const claims = tokenClaims();
  const expired = claims && claims.exp && claims.exp * 1000 < Date.now();
  const input = el("input", { id: "sign-in-token", name: "token", type: "password", autocomplete: "off", size: 40, required: true });
  const form = el("form", { id: "sign-in", "aria-labelledby": "sign-in-title" },
    el("label", {}, "Access token (JWT)", input),
    el("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    store.setItem("token", input.value.trim());
    location.reload();
  });
  return el("section", { class: "card", "aria-label": "Sign in" },
    el("h2", { id: "sign-in-title" }, "Sign in"),
    why ? el("p", { class: "error", role: "alert" }, why) : null,
    expired ? el("p", { class: "reason" }, `The token in use expired at ${new Date(claims.exp * 1000).toISOString()}.`) : null,
    el("p", { class: "muted" }, "On AWS, paste an access token of the API's issuer (its tenantId and scope claims decide what you see and may do); it stays in this browser tab only. Locally, give a tenant in the Tenant field instead."),
    form);
}

// ---- small DOM helpers ---------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c.nodeType ? c : String(c));
  return node;
}
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c.nodeType ? c : String(c));
  return node;
}
const main = document.getElementById("main");
function page(title, ...children) {
  document.title = title + " · LendingOS console";
  main.replaceChildren(el("h1", {}, title), ...children.filter((c) => c !== null && c !== undefined));
}
/** An error as the page shows it; a 401 asks the caller to sign in. */
function errorBox(e) {
  if (e && e.status === 401) return signInPanel(String(e.message));
  return el("p", { class: "error", role: "alert" }, String(e.message || e));
}
const link = (path, text, params) => el("a", { href: href(path, params) }, text);
const enc = encodeURIComponent;
const short = (id) => String(id || "").slice(0, 8);
const money = (v) => Number(v || 0);

/** A button that needs `scope`: disabled with a visible reason when the session lacks it. */
function guarded(scope, label, attrs, onclick) {
  const b = el("button", Object.assign({ type: "button", onclick }, attrs), label);
  if (!holds(scope)) {
    b.disabled = true;
    b.title = `Needs the scope ${scope}`;
  }
  return b;
}
function scopeReason(scope) {
  if (holds(scope)) return null;
  const held = heldScopes();
  return el("p", { class: "reason", id: "scope-reason", role: "note" },
    `Operator actions are disabled: they need the scope ${scope}; this session holds ${held.length ? held.join(" ") : "no scope"}.`);
}

// ---- live feed: Server-Sent Events read with fetch (EventSource cannot send headers) --------
/** Read `url` as an SSE stream until `signal` aborts, reconnecting with Last-Event-ID. */
async function readStream(url, onEvent, onStatus, signal) {
  let last = null;
  while (!signal.aborted) {
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (last) h["Last-Event-ID"] = last;
      const r = await fetch(BASE + url, { headers: h, signal });
      if (!r.ok) {
        let msg = r.statusText;
        try { msg = (await r.json()).error.message; } catch (_) { /* keep statusText */ }
        onStatus(`refused: ${r.status} ${msg}`, true, r.status);
        if (r.status >= 400 && r.status < 500) return;
      } else {
        onStatus("live", false);
        const reader = r.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let id = null, data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("id:")) id = line.slice(3).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trim();
            }
            if (id && data) { last = id; onEvent(JSON.parse(data)); }
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    onStatus("reconnecting…", false);
    await new Promise((res) => setTimeout(res, 1000));
  }
}

let stopFeed = null;
function feedPage() {
  const filters = ["types", "aggregateType", "aggregateId", "correlationId"];
  const form = el("form", { id: "filters", "aria-label": "Filter the feed" },
    el("label", {}, "Event types", el("input", { name: "types", value: query.get("types") || "", placeholder: "Loan.*, Payment.Received", size: 26 })),
    el("label", {}, "Aggregate type", el("input", { name: "aggregateType", value: query.get("aggregateType") || "", size: 10 })),
    el("label", {}, "Aggregate id", el("input", { name: "aggregateId", value: query.get("aggregateId") || "", size: 12 })),
    el("label", {}, "Correlation", el("input", { name: "correlationId", value: query.get("correlationId") || "", size: 14 })),
    el("label", {}, "Since", el("select", { name: "since" },
      ...[["15", "15 minutes ago"], ["60", "1 hour ago"], ["1440", "1 day ago"], ["0", "now"]].map(([v, t]) =>
        el("option", { value: v, selected: (query.get("since") || "15") === v }, t)))),
    el("button", { type: "submit" }, "Apply"));
  const status = el("span", { id: "feed-status", role: "status", class: "muted" }, "connecting…");
  const count = el("span", { id: "feed-count", class: "muted" }, "0 events");
  const rows = el("tbody");
  const table = el("table", { id: "feed" },
    el("caption", { class: "muted", style: "text-align:left" }, "Newest first. Events show once they are a few seconds old (the stream's settle time)."),
    el("thead", {}, el("tr", {}, ["Recorded", "Event", "Aggregate", "Correlation", "Principal"].map((h) => el("th", { scope: "col" }, h)))),
    rows);
  page("Live feed", form, el("div", { class: "toolbar" }, status, count), table);
  let n = 0;
  const start = () => {
    if (stopFeed) stopFeed();
    const controller = new AbortController();
    stopFeed = () => controller.abort();
    const data = new FormData(form);
    const params = new URLSearchParams();
    for (const f of filters) if (data.get(f)) params.set(f, data.get(f));
    const since = Number(data.get("since") || 15);
    if (since > 0) params.set("from", new Date(Date.now() - since * 60000).toISOString());
    rows.replaceChildren(); n = 0; count.textContent = "0 events";
    readStream("/events/stream?" + params.toString(), (e) => {
      n += 1;
      count.textContent = `${n} event${n === 1 ? "" : "s"}`;
      const c = e.metadata.correlationId;
      rows.prepend(el("tr", { "data-event-id": e.eventId, "data-event-type": e.eventType },
        el("td", { class: "mono" }, e.recordedAt),
        el("td", {}, link(`/console/events/${enc(e.eventId)}`, e.eventType), el("span", { class: "muted" }, ` #${e.sequence}`)),
        el("td", {}, link(`/console/aggregates/${enc(e.aggregateType)}/${enc(e.aggregateId)}`, `${e.aggregateType}/${e.aggregateId}`)),
        el("td", {}, link(`/console/correlations/${enc(c)}`, c.length > 20 ? short(c) + "…" : c)),
        el("td", { class: "muted" }, e.metadata.principal || "")));
      while (rows.children.length > 500) rows.lastChild.remove();
    }, (text, bad, code) => {
      status.textContent = text; status.className = bad ? "bad" : "muted";
      if (code === 401 && !document.getElementById("sign-in")) main.insertBefore(signInPanel(text), form);
    }, controller.signal);
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const params = {};
    for (const f of [...filters, "since"]) if (data.get(f)) params[f] = data.get(f);
    history.replaceState(null, "", href("/console", params));
    start();
  });
  start();
}

// ---- event -----------------------------------------------------------------------------------
async function eventPage(id) {
  page(`Event ${short(id)}`, el("p", {}, "Loading…"));
  try {
    const e = await api("GET", `/events/${enc(id)}`);
    const m = e.metadata;
    page(`${e.eventType} ${short(e.eventId)}`,
      el("div", { class: "grid" },
        card("Aggregate", link(`/console/aggregates/${enc(e.aggregateType)}/${enc(e.aggregateId)}`, `${e.aggregateType}/${e.aggregateId}`)),
        card("Sequence", e.sequence),
        card("Correlation", link(`/console/correlations/${enc(m.correlationId)}`, m.correlationId)),
        card("Caused by", m.causationId ? link(`/console/events/${enc(m.causationId)}`, short(m.causationId)) : "—"),
        card("Recorded", e.recordedAt), card("Occurred", e.occurredAt),
        card("Principal", m.principal || "—"), card("Version", e.eventVersion)),
      el("h2", {}, "Envelope"), el("pre", { id: "envelope" }, JSON.stringify(e, null, 2)));
  } catch (err) { page(`Event ${short(id)}`, errorBox(err)); }
}
function card(title, ...value) { return el("div", { class: "card" }, el("b", {}, title), ...value); }

// ---- aggregate ---------------------------------------------------------------------------------
async function allHistory(type, id) {
  const out = [];
  let after = 0;
  for (;;) {
    const r = await api("GET", `/aggregates/${enc(type)}/${enc(id)}/events?after=${after}&limit=1000`);
    out.push(...r.events);
    if (r.next === null || r.next === undefined) return out;
    after = r.next;
  }
}

async function aggregatePage(type, id) {
  const title = `${type} ${id}`;
  page(title, el("p", {}, "Loading…"));
  const pageSize = 20;
  const after = Math.max(0, Number(query.get("after") || 0));
  try {
    const [state, hist] = await Promise.all([
      api("GET", `/aggregates/${enc(type)}/${enc(id)}/state`),
      api("GET", `/aggregates/${enc(type)}/${enc(id)}/events?after=${after}&limit=${pageSize}`),
    ]);
    const parts = [el("p", { class: "muted" }, `Version ${state.version}`)];
    const s = state.state || {};
    if (type === "Loan") parts.push(...await loanParts(type, id, s));
    parts.push(el("h2", {}, "Folded state"), el("pre", { id: "state" }, JSON.stringify(s, null, 2)));
    const rows = hist.events.map((e) => el("tr", {},
      el("td", {}, e.sequence),
      el("td", {}, link(`/console/events/${enc(e.eventId)}`, e.eventType)),
      el("td", { class: "mono" }, e.recordedAt),
      el("td", {}, link(`/console/correlations/${enc(e.metadata.correlationId)}`, short(e.metadata.correlationId))),
      el("td", { class: "muted" }, e.metadata.principal || "")));
    const nav = el("div", { class: "toolbar" },
      after > 0 ? link(here(), "← Earlier", { after: Math.max(0, after - pageSize) }) : el("span", { class: "muted" }, "← Earlier"),
      el("span", { class: "muted" }, `events ${after + 1}–${after + hist.events.length}`),
      hist.next !== null && hist.next !== undefined ? link(here(), "Later →", { after: hist.next }) : el("span", { class: "muted" }, "Later →"));
    parts.push(el("h2", {}, "History"), nav,
      el("table", { id: "history" }, el("thead", {}, el("tr", {}, ["#", "Event", "Recorded", "Correlation", "Principal"].map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows)));
    page(title, ...parts);
  } catch (err) { page(title, errorBox(err)); }
}

async function loanParts(type, id, s) {
  const history = await allHistory(type, id);
  const schedules = history.filter((e) => e.eventType === "PaymentSchedule.Generated");
  const current = schedules.filter((e) => e.payload.scheduleId === s.scheduleId).pop() || schedules.pop();
  const applied = history.filter((e) => e.eventType === "Payment.Applied");
  const late = new Set((s.lateInstallments || []).map(Number));
  const out = [el("div", { class: "grid" },
    card("Status", el("span", { class: "status" }, s.status || "—")),
    card("Funded", s.fundedAmount || "—"), card("Outstanding principal", s.outstandingPrincipal || "—"),
    card("Paid principal / interest", `${s.paidPrincipal || "0.00"} / ${s.paidInterest || "0.00"}`),
    card("Installments settled", `${s.installmentsSettled || 0} of ${s.installments || 0}`),
    card("Late installments", late.size ? [...late].join(", ") : "none"),
    card("Draws", s.draws ? `${s.draws.approved} approved, ${s.draws.rejected} rejected; undrawn ${s.draws.undrawn}` : "—"),
    card("Disbursed draws", s.disbursedDrawsTotal || "0.00"))];
  out.push(el("h2", {}, "Payment schedule"));
  if (current) out.push(scheduleChart(current.payload.payments || [], s.installmentsSettled || 0, late));
  else out.push(el("p", { class: "muted", id: "no-schedule" }, "No schedule yet (it is generated when the loan is funded)."));
  out.push(el("h2", {}, "Payments applied"));
  out.push(applied.length ? el("table", { id: "payments" },
    el("thead", {}, el("tr", {}, ["Payment", "Interest", "Principal", "Remaining principal", "Recorded"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, applied.map((e) => {
      const p = e.payload, a = p.allocation || {};
      return el("tr", {}, el("td", {}, link(`/console/events/${enc(e.eventId)}`, p.paymentId || short(e.eventId))),
        el("td", {}, a.interest || ""), el("td", {}, a.principal || ""), el("td", {}, p.remainingPrincipal || ""), el("td", { class: "mono" }, e.recordedAt));
    }))) : el("p", { class: "muted" }, "None."));
  const draws = history.filter((e) => e.eventType.startsWith("Loan.Draw"));
  out.push(el("h2", {}, "Draws"));
  out.push(draws.length ? el("ul", {}, draws.map((e) => el("li", {}, link(`/console/events/${enc(e.eventId)}`, e.eventType), " ",
    el("span", { class: "muted" }, [e.payload.drawId, e.payload.amount || e.payload.approvedAmount || e.payload.requestedAmount].filter(Boolean).join(" · "))))) : el("p", { class: "muted" }, "None."));
  return out;
}

/** Principal and interest per installment as stacked bars, the balance as a line. */
function scheduleChart(installments, settled, late) {
  const n = installments.length;
  const W = Math.max(640, 60 + n * 28), H = 300, left = 70, right = 70, top = 20, bottom = 40;
  const plotW = W - left - right, plotH = H - top - bottom;
  const maxPay = Math.max(1, ...installments.map((i) => money(i.principal) + money(i.interest)));
  const maxBal = Math.max(1, ...installments.map((i) => money(i.balance) + money(i.principal)));
  const step = plotW / Math.max(1, n), bar = Math.max(3, step * 0.7);
  const y = (v) => top + plotH - (v / maxPay) * plotH;
  const yb = (v) => top + plotH - (v / maxBal) * plotH;
  const chart = svg("svg", { id: "schedule-chart", class: "chart", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
    "aria-labelledby": "schedule-title", "data-installments": n });
  chart.append(svg("title", { id: "schedule-title" }, `Payment schedule: ${n} installments; principal and interest per installment, balance line`));
  for (let k = 0; k <= 4; k++) {
    const v = (maxPay * k) / 4;
    chart.append(svg("line", { x1: left, x2: left + plotW, y1: y(v), y2: y(v), stroke: "#eaeef2" }),
      svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#57606a" }, Math.round(v).toLocaleString()),
      svg("text", { x: left + plotW + 6, y: yb((maxBal * k) / 4) + 4, "font-size": 11, fill: "#1f2328" }, Math.round((maxBal * k) / 4).toLocaleString()));
  }
  const points = [];
  installments.forEach((inst, i) => {
    const x = left + i * step + (step - bar) / 2;
    const p = money(inst.principal), it = money(inst.interest);
    const paid = i < settled, isLate = late.has(Number(inst.number));
    const g = svg("g", { class: "installment", "data-number": inst.number, opacity: paid ? 1 : 0.55 },
      svg("title", {}, `#${inst.number} due ${inst.dueDate}: principal ${inst.principal}, interest ${inst.interest}, balance ${inst.balance}${paid ? " (paid)" : ""}${isLate ? " (late)" : ""}`),
      svg("rect", { class: "principal", x, width: bar, y: y(p), height: Math.max(0, y(0) - y(p)), fill: "#0969da" }),
      svg("rect", { class: "interest", x, width: bar, y: y(p + it), height: Math.max(0, y(p) - y(p + it)), fill: "#bc4c00" }));
    if (isLate) g.append(svg("rect", { x: x - 2, width: bar + 4, y: y(p + it) - 2, height: y(0) - y(p + it) + 4, fill: "none", stroke: "#cf222e", "stroke-width": 2 }));
    chart.append(g);
    if (n <= 36 || i % Math.ceil(n / 24) === 0) chart.append(svg("text", { x: x + bar / 2, y: top + plotH + 14, "text-anchor": "middle", "font-size": 10, fill: "#57606a" }, inst.number));
    points.push(`${(x + bar / 2).toFixed(1)},${yb(money(inst.balance)).toFixed(1)}`);
  });
  chart.append(svg("polyline", { class: "balance", points: points.join(" "), fill: "none", stroke: "#1f2328", "stroke-width": 2 }));
  chart.append(svg("text", { x: left, y: H - 6, "font-size": 11, fill: "#57606a" }, "installment"),
    svg("text", { x: 4, y: 12, "font-size": 11, fill: "#57606a" }, "payment"),
    svg("text", { x: W - 4, y: 12, "text-anchor": "end", "font-size": 11, fill: "#1f2328" }, "balance"));
  const legend = el("p", { class: "legend" },
    el("span", {}, el("i", { class: "swatch", style: "background:#0969da" }), "principal"),
    el("span", {}, el("i", { class: "swatch", style: "background:#bc4c00" }), "interest"),
    el("span", {}, el("i", { class: "swatch", style: "background:#1f2328;height:3px" }), "balance"),
    el("span", {}, "faded: not yet paid"), el("span", { class: "bad" }, "red outline: reported late"));
  return el("figure", { style: "margin:0" }, chart, legend);
}

// ---- correlation graph ---------------------------------------------------------------------------
const statusColour = { COMPLETED: "#1a7f37", FAILED: "#cf222e", IN_PROGRESS: "#9a6700", PENDING: "#9a6700" };

async function correlationPage(id) {
  const title = `Correlation ${id.length > 24 ? short(id) + "…" : id}`;
  let timer = null;
  const load = async () => {
    try {
      const doc = await api("GET", `/correlations/${enc(id)}`);
      const nodes = [];
      const walk = (n, depth, parent) => { nodes.push({ n, depth, parent }); (n.children || []).forEach((c) => walk(c, depth + 1, n)); };
      doc.tree.forEach((r) => walk(r, 0, null));
      const handlers = nodes.flatMap((x) => x.n.handlers || []);
      const pending = handlers.filter((h) => h.status === "PENDING" || h.status === "IN_PROGRESS").length;
      const failed = handlers.filter((h) => h.status === "FAILED").length;
      const summary = el("p", { id: "graph-summary", role: "status" },
        `${doc.eventCount} events, ${handlers.length} handler runs: `,
        el("span", { class: "ok" }, `${handlers.length - pending - failed} completed`), ", ",
        el("span", { class: failed ? "bad" : "muted" }, `${failed} failed`), ", ",
        el("span", { class: pending ? "wait" : "muted" }, `${pending} pending`),
        pending ? " (refreshing every 3 s)" : "");
      summary.append(" ", el("button", { type: "button", onclick: () => { clearTimeout(timer); load(); } }, "Refresh"));
      page(title, summary, el("div", { class: "graph-wrap" }, causalGraph(nodes)),
        el("p", { class: "legend" },
          el("span", {}, el("i", { class: "swatch", style: "background:#1a7f37" }), "completed"),
          el("span", {}, el("i", { class: "swatch", style: "background:#cf222e" }), "failed"),
          el("span", {}, el("i", { class: "swatch", style: "background:#9a6700" }), "pending / in progress"),
          el("span", { class: "muted" }, "edge label: hop latency (recordedAt of the effect minus its cause)")));
      // Follow-ons of a fresh correlation may still be on their way: keep looking for a while.
      const newest = Math.max(...nodes.map((x) => Date.parse(x.n.event.recordedAt)));
      const fresh = Date.now() - newest < 60000;
      if ((pending || fresh) && here().startsWith("/console/correlations/")) timer = setTimeout(load, 3000);
    } catch (err) { page(title, errorBox(err)); }
  };
  page(title, el("p", {}, "Loading…"));
  await load();
  return () => clearTimeout(timer);
}

function causalGraph(nodes) {
  const colW = 360, boxW = 330, line = 16, gap = 18;
  let yCursor = 10;
  const pos = new Map();
  for (const x of nodes) {
    const hs = x.n.handlers || [];
    const errors = hs.filter((h) => h.lastError && h.status !== "COMPLETED");
    const h = 36 + hs.length * line + errors.length * line * 2;
    pos.set(x.n.event.eventId, { x: 10 + x.depth * colW, y: yCursor, h });
    yCursor += h + gap;
  }
  const width = 20 + (Math.max(0, ...nodes.map((x) => x.depth)) + 1) * colW;
  const g = svg("svg", { id: "causal-graph", width, height: yCursor, viewBox: `0 0 ${width} ${yCursor}`, role: "group", "aria-label": "Causal graph of the correlation" });
  for (const x of nodes) {
    if (!x.parent) continue;
    const a = pos.get(x.parent.event.eventId), b = pos.get(x.n.event.eventId);
    const x1 = a.x + 20, y1 = a.y + a.h, x2 = b.x, y2 = b.y + 18;
    g.append(svg("path", { class: "edge", d: `M${x1},${y1} V${y2} H${x2}`, fill: "none", stroke: "#8c959f", "stroke-width": 1.5, "marker-end": "" }));
    const hop = Date.parse(x.n.event.recordedAt) - Date.parse(x.parent.event.recordedAt);
    g.append(svg("text", { x: x1 + 4, y: y2 - 4, "font-size": 10, fill: "#57606a" }, `+${hop} ms`));
  }
  for (const x of nodes) {
    const e = x.n.event, p = pos.get(e.eventId), hs = x.n.handlers || [];
    const anyFailed = hs.some((h) => h.status === "FAILED");
    const node = svg("a", { href: href(`/console/events/${enc(e.eventId)}`), class: "node", "data-event-type": e.eventType, "data-event-id": e.eventId });
    node.append(svg("title", {}, `${e.eventType} ${e.aggregateType}/${e.aggregateId} #${e.sequence} at ${e.recordedAt}`),
      svg("rect", { x: p.x, y: p.y, width: boxW, height: p.h, rx: 6, fill: "#fff", stroke: anyFailed ? "#cf222e" : "#8c959f", "stroke-width": anyFailed ? 2 : 1 }),
      svg("text", { x: p.x + 8, y: p.y + 16, "font-size": 13, "font-weight": 600, fill: "#0969da" }, e.eventType),
      svg("text", { x: p.x + 8, y: p.y + 30, "font-size": 11, fill: "#57606a" }, `${e.aggregateType}/${String(e.aggregateId).slice(0, 24)} #${e.sequence}`));
    let y = p.y + 30;
    for (const h of hs) {
      y += line;
      const colour = statusColour[h.status] || "#57606a";
      const attempts = h.attempts ? ` · ${h.attempts} attempt${h.attempts === 1 ? "" : "s"}` : "";
      const duration = h.durationMs !== null && h.durationMs !== undefined ? ` · ${h.durationMs} ms` : "";
      node.append(svg("g", { class: "handler", "data-handler": h.handler, "data-status": h.status },
        svg("circle", { cx: p.x + 14, cy: y - 4, r: 5, fill: colour }),
        svg("text", { x: p.x + 24, y, "font-size": 11, fill: colour === "#57606a" ? "#1f2328" : colour }, `${h.handler} ${h.status.toLowerCase()}${attempts}${duration}`)));
      if (h.lastError && h.status !== "COMPLETED") {
        const text = String(h.lastError);
        for (const part of [text.slice(0, 48), text.slice(48, 96)]) {
          y += line;
          node.append(svg("text", { class: "node-error", x: p.x + 24, y, "font-size": 10.5, fill: "#cf222e" }, part));
        }
      }
    }
    g.append(node);
  }
  return g;
}

// ---- dead letters ---------------------------------------------------------------------------------
async function deadLettersPage() {
  const scope = "ops:dead-letters";
  const reason = scopeReason(scope);
  const content = el("div", { id: "dead-letters" }, el("p", {}, "Loading…"));
  const result = el("p", { id: "action-result", role: "status" });
  const act = async (domain, action, body) => {
    if (action === "purge") {
      const what = body.all ? `every dead letter of this tenant in ${domain}` : `${body.eventIds.length} dead letter(s) in ${domain}`;
      if (!window.confirm(`Purge ${what}? They are deleted for good.`)) return;
    }
    try {
      const r = await api("POST", `/dead-letters/${enc(domain)}/${action}`, body);
      result.className = "ok";
      result.textContent = action === "redrive" ? `Redriven: ${r.redriven} (${(r.eventIds || []).map(short).join(", ")})` : `Purged: ${r.purged}`;
      await load();
    } catch (err) { result.className = "bad"; result.textContent = String(err.message); }
  };
  const load = async () => {
    if (!holds(scope)) {
      content.replaceChildren(el("p", { class: "muted" }, "Listing dead letters needs the same scope."),
        el("div", { class: "toolbar" },
          guarded(scope, "Redrive all", { id: "redrive-all", "aria-describedby": "scope-reason" }),
          guarded(scope, "Purge all", { id: "purge-all", class: "danger", "aria-describedby": "scope-reason" })));
      return;
    }
    try {
      const doc = await api("GET", "/dead-letters");
      content.replaceChildren(...doc.deadLetters.map((q) => {
        const boxes = [];
        const rows = q.messages.map((m) => {
          const box = el("input", { type: "checkbox", value: m.eventId || "", "aria-label": `Select ${m.eventType || "message"} ${short(m.eventId)}`, disabled: !m.eventId });
          boxes.push(box);
          return el("tr", { "data-event-id": m.eventId || "" },
            el("td", {}, box),
            el("td", {}, m.eventId ? link(`/console/events/${enc(m.eventId)}`, m.eventType || short(m.eventId)) : (m.eventType || "—")),
            el("td", {}, m.handler || "—"),
            el("td", {}, m.reason), el("td", {}, m.failureClass || "—"), el("td", {}, m.receiveCount || "—"),
            el("td", { class: "mono" }, m.failedAt || ""));
        });
        const selected = () => boxes.filter((b) => b.checked).map((b) => b.value);
        const some = (action) => () => {
          const ids = selected();
          if (!ids.length) { result.className = "bad"; result.textContent = "Select at least one message."; return; }
          act(q.domain, action, { eventIds: ids });
        };
        return el("section", { "aria-label": `Queue ${q.queue}`, "data-domain": q.domain },
          el("h2", {}, `${q.domain} `, el("span", { class: "muted" }, `${q.queue} · ${q.count} message${q.count === 1 ? "" : "s"}`)),
          q.count ? el("div", { class: "toolbar" },
            guarded(scope, "Redrive selected", { "data-action": "redrive-selected" }, some("redrive")),
            guarded(scope, "Redrive all", { "data-action": "redrive-all" }, () => act(q.domain, "redrive", { all: true })),
            guarded(scope, "Purge selected…", { class: "danger", "data-action": "purge-selected" }, some("purge")),
            guarded(scope, "Purge all…", { class: "danger", "data-action": "purge-all" }, () => act(q.domain, "purge", { all: true }))) : null,
          q.count ? el("table", {}, el("thead", {}, el("tr", {}, ["", "Event", "Handler", "Reason", "Class", "Receives", "Failed at"].map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows))
            : el("p", { class: "muted" }, "Empty."));
      }));
    } catch (err) { content.replaceChildren(errorBox(err)); }
  };
  page("Dead letters", reason, el("div", { class: "toolbar" }, el("button", { type: "button", onclick: () => load() }, "Refresh")), result, content);
  await load();
}

// ---- handlers ---------------------------------------------------------------------------------------
async function handlersPage() {
  const scope = "ops:handlers";
  const reason = scopeReason(scope);
  const content = el("div", { id: "handlers" }, el("p", {}, "Loading…"));
  const days = Number(query.get("days") || 7);
  page("Handlers", reason, el("p", { class: "muted" }, `Statistics of the last ${days} days (UTC), all tenants.`), content);
  if (!holds(scope)) {
    content.replaceChildren(el("p", { class: "muted" }, "Handler switches and statistics need the same scope."),
      el("div", { class: "toolbar" }, guarded(scope, "Switch off", { id: "switch-disabled", "aria-describedby": "scope-reason" })));
    return;
  }
  try {
    const doc = await api("GET", "/handlers");
    const stats = await Promise.all(doc.handlers.map((h) => api("GET", `/handlers/${enc(h.handler)}/stats?days=${days}`).catch(() => null)));
    content.replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, ["Handler", "Domain", "Switch", "Succeeded", "Failed", "Retried", "Dead-lettered", "p50 / p90 / p99", "Duration histogram", "Last error"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, doc.handlers.map((h, i) => {
        const s = stats[i] || {};
        const toggle = guarded(scope, h.enabled ? "Switch off" : "Switch on", { "data-handler": h.handler, "aria-pressed": String(h.enabled) }, async () => {
          try { await api("PUT", `/handlers/${enc(h.handler)}`, { enabled: !h.enabled }); handlersPage(); } catch (err) { content.prepend(errorBox(err)); }
        });
        const runs = (s.buckets || []).reduce((a, b) => a + b, 0);
        const top = (s.bucketBoundsMs || []).slice(-1)[0];
        // No percentile with runs means above the last bucket's bound.
        const ms = (v) => (v !== null && v !== undefined ? `≤${v}` : runs ? `>${top}` : "—");
        return el("tr", { "data-handler": h.handler },
          el("td", {}, h.handler), el("td", {}, h.domain),
          el("td", {}, el("span", { class: h.enabled ? "ok status" : "bad status" }, h.enabled ? "on " : "off "), toggle),
          el("td", {}, s.successes ?? "—"), el("td", {}, s.failures ?? "—"), el("td", {}, s.retries ?? "—"), el("td", {}, s.deadLettered ?? "—"),
          el("td", {}, `${ms(s.p50Ms)} / ${ms(s.p90Ms)} / ${ms(s.p99Ms)} ms`),
          el("td", {}, histogram(s.buckets || [], s.bucketBoundsMs || [], h.handler)),
          el("td", { class: "bad" }, s.lastError ? `${s.lastError.slice(0, 80)} (${s.lastErrorAt || ""})` : ""));
      }))));
  } catch (err) { content.replaceChildren(errorBox(err)); }
}

function histogram(buckets, bounds, name) {
  const W = 180, H = 50, n = buckets.length || 1, max = Math.max(1, ...buckets), w = W / n;
  const labels = buckets.map((c, i) => `${i < bounds.length ? "≤" + bounds[i] : ">" + bounds[bounds.length - 1]} ms: ${c}`);
  const chart = svg("svg", { class: "histogram", width: W, height: H + 12, viewBox: `0 0 ${W} ${H + 12}`, role: "img", "aria-label": `${name} durations: ${labels.join(", ")}` });
  buckets.forEach((c, i) => {
    const h = (c / max) * H;
    chart.append(svg("rect", { x: i * w + 1, y: H - h, width: w - 2, height: h, fill: "#0969da" }, svg("title", {}, labels[i])));
  });
  chart.append(svg("text", { x: 0, y: H + 11, "font-size": 9, fill: "#57606a" }, `${bounds[0] || 0} ms`),
    svg("text", { x: W, y: H + 11, "font-size": 9, "text-anchor": "end", fill: "#57606a" }, `>${bounds[bounds.length - 1] || 0} ms`));
  return chart;
}

// ---- subscriptions --------------------------------------------------------------------------------
const SUBSCRIPTIONS_SCOPE = "subscriptions:admin";
const targetText = (t) => (t && t.type === "webhook" ? t.url : t && t.type === "sqs" ? t.queueUrl : JSON.stringify(t));
function filterText(f) {
  const text = JSON.stringify(f || {});
  return text === "{}" ? "every event" : text;
}
function statusBadge(status) {
  return el("span", { class: `status ${status === "active" ? "ok" : "wait"}`, "data-status": status }, status);
}
function circuitBadge(c) {
  if (!c) return el("span", { class: "muted" }, "—");
  const colour = c.state === "closed" ? "ok" : c.state === "open" ? "bad" : "wait";
  const failures = c.consecutiveFailures ? ` · ${c.consecutiveFailures} failure${c.consecutiveFailures === 1 ? "" : "s"} in a row` : "";
  const retry = c.retryAt ? ` · next try ${c.retryAt}` : "";
  return el("span", { class: `status ${colour}`, "data-circuit": c.state }, `${c.state}${failures}${retry}`);
}

/** Pause or resume, and delete after a confirmation: each a PATCH or DELETE of the subscription
 * routes (recorded as Subscription.* events with the caller's principal). */
function subscriptionActions(sub, result, after) {
  const id = sub.subscriptionId;
  const run = async (what, call) => {
    try { await call(); result.className = "ok"; result.textContent = `${what}: ${sub.name || short(id)}`; await after(what); }
    catch (err) { result.className = "bad"; result.textContent = String(err.message); }
  };
  const paused = sub.status === "paused";
  return [
    guarded(SUBSCRIPTIONS_SCOPE, paused ? "Resume" : "Pause", { "data-action": paused ? "resume" : "pause", "aria-describedby": holds(SUBSCRIPTIONS_SCOPE) ? null : "scope-reason" },
      () => run(paused ? "Resumed" : "Paused", () => api("PATCH", `/subscriptions/${enc(id)}`, { status: paused ? "active" : "paused" }))),
    guarded(SUBSCRIPTIONS_SCOPE, "Delete…", { class: "danger", "data-action": "delete", "aria-describedby": holds(SUBSCRIPTIONS_SCOPE) ? null : "scope-reason" },
      () => {
        if (!window.confirm(`Delete the subscription ${sub.name || id}? Its deliveries stop; this cannot be undone.`)) return;
        run("Deleted", () => api("DELETE", `/subscriptions/${enc(id)}`));
      }),
  ];
}

/** Without the scope: what the page would offer, disabled, and why. */
function subscriptionsWithoutScope(content) {
  content.replaceChildren(el("p", { class: "muted" }, "Listing subscriptions and their deliveries needs the same scope."),
    el("div", { class: "toolbar" },
      guarded(SUBSCRIPTIONS_SCOPE, "Pause", { id: "pause-disabled", "aria-describedby": "scope-reason" }),
      guarded(SUBSCRIPTIONS_SCOPE, "Delete…", { id: "delete-disabled", class: "danger", "aria-describedby": "scope-reason" })));
}

async function subscriptionsPage() {
  const content = el("div", { id: "subscriptions" }, el("p", {}, "Loading…"));
  const result = el("p", { id: "action-result", role: "status" });
  const load = async () => {
    if (!holds(SUBSCRIPTIONS_SCOPE)) return subscriptionsWithoutScope(content);
    try {
      const doc = await api("GET", "/subscriptions");
      // The circuit is per target and only the single-subscription route reads it.
      const circuits = await Promise.all(doc.subscriptions.map((s) =>
        api("GET", `/subscriptions/${enc(s.subscriptionId)}`).then((d) => d.circuit).catch(() => null)));
      if (!doc.subscriptions.length) { content.replaceChildren(el("p", { class: "muted" }, "No subscriptions for this tenant.")); return; }
      content.replaceChildren(el("table", {},
        el("thead", {}, el("tr", {}, ["Subscription", "Target", "Filter", "Format", "Status", "Circuit", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, doc.subscriptions.map((s, i) => el("tr", { "data-subscription-id": s.subscriptionId },
          el("td", {}, link(`/console/subscriptions/${enc(s.subscriptionId)}`, s.name || short(s.subscriptionId)),
            el("div", { class: "muted mono" }, s.subscriptionId)),
          el("td", { class: "mono" }, targetText(s.target)),
          el("td", { class: "mono" }, filterText(s.filter)),
          el("td", {}, s.format),
          el("td", {}, statusBadge(s.status)),
          el("td", {}, circuitBadge(circuits[i])),
          el("td", {}, el("div", { class: "toolbar" }, subscriptionActions(s, result, load))))))));
    } catch (err) { content.replaceChildren(errorBox(err)); }
  };
  page("Subscriptions", scopeReason(SUBSCRIPTIONS_SCOPE),
    el("div", { class: "toolbar" }, el("button", { type: "button", onclick: () => load() }, "Refresh")), result, content);
  await load();
}

async function subscriptionPage(id) {
  const title = `Subscription ${short(id)}`;
  const content = el("div", { id: "subscription" }, el("p", {}, "Loading…"));
  const result = el("p", { id: "action-result", role: "status" });
  const cursor = query.get("cursor");
  const load = async () => {
    if (!holds(SUBSCRIPTIONS_SCOPE)) return subscriptionsWithoutScope(content);
    try {
      const [sub, log] = await Promise.all([
        api("GET", `/subscriptions/${enc(id)}`),
        api("GET", `/subscriptions/${enc(id)}/deliveries?limit=50${cursor ? "&cursor=" + enc(cursor) : ""}`),
      ]);
      document.title = `${sub.name || title} · LendingOS console`;
      main.querySelector("h1").textContent = `Subscription ${sub.name || short(id)}`;
      // The log is newest first: number each event's attempts from its oldest on this page.
      const seen = new Map();
      const attemptNo = new Array(log.deliveries.length);
      for (let i = log.deliveries.length - 1; i >= 0; i--) {
        const e = log.deliveries[i].eventId;
        seen.set(e, (seen.get(e) || 0) + 1);
        attemptNo[i] = seen.get(e);
      }
      const outcomeClass = { DELIVERED: "ok", RETRYING: "wait", DEAD_LETTERED: "bad" };
      const rows = log.deliveries.map((d, i) => el("tr", { "data-event-id": d.eventId, "data-outcome": d.outcome, "data-status-code": d.status ?? "" },
        el("td", { class: "mono" }, d.at),
        el("td", {}, link(`/console/events/${enc(d.eventId)}`, d.eventType), el("div", { class: "muted mono" }, short(d.eventId))),
        el("td", {}, link(`/console/aggregates/${enc(d.aggregateType)}/${enc(d.aggregateId)}`, `${d.aggregateType}/${d.aggregateId}`), el("span", { class: "muted" }, ` #${d.sequence}`)),
        el("td", {}, attemptNo[i]),
        el("td", {}, d.status ?? "—"),
        el("td", {}, `${d.durationMs} ms`),
        el("td", {}, el("span", { class: `status ${outcomeClass[d.outcome] || ""}` }, d.outcome)),
        el("td", { class: "bad" }, d.error || "")));
      const backfill = sub.backfill ? card("Backfill", sub.backfill.done ? "done" : `${sub.backfill.sent} sent so far`) : null;
      content.replaceChildren(
        el("div", { class: "grid" },
          card("Id", el("span", { class: "mono" }, sub.subscriptionId)),
          card("Target", el("span", { class: "mono", id: "subscription-target" }, targetText(sub.target))),
          card("Format", sub.format), card("Status", statusBadge(sub.status)), card("Circuit", circuitBadge(sub.circuit)),
          card("Created", sub.createdAt), card("Updated", sub.updatedAt), card("Version", sub.version), backfill),
        el("div", { class: "toolbar" }, subscriptionActions(sub, result, async (what) => {
          if (what === "Deleted") location.assign(href("/console/subscriptions")); else await load();
        })),
        el("h2", {}, "Filter"), el("pre", { id: "subscription-filter" }, JSON.stringify(sub.filter || {}, null, 2)),
        el("h2", {}, "Delivery log"),
        log.deliveries.length ? el("table", { id: "deliveries" },
          el("caption", { class: "muted", style: "text-align:left" }, "Every attempt, newest first; an event's attempts are numbered from its oldest on this page."),
          el("thead", {}, el("tr", {}, ["At", "Event", "Aggregate", "Attempt", "Status code", "Duration", "Outcome", "Error"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, rows)) : el("p", { class: "muted", id: "no-deliveries" }, "No delivery attempts yet."),
        el("div", { class: "toolbar" },
          cursor ? link(here(), "← Newest") : null,
          log.cursor ? link(here(), "Older →", { cursor: log.cursor }) : null));
    } catch (err) { content.replaceChildren(errorBox(err)); }
  };
  page(title, scopeReason(SUBSCRIPTIONS_SCOPE),
    el("div", { class: "toolbar" }, link("/console/subscriptions", "← All subscriptions"), el("button", { type: "button", onclick: () => load() }, "Refresh")),
    result, content);
  await load();
}

// ---- routing ----------------------------------------------------------------------------------------
function sessionForm() {
  const form = document.getElementById("session");
  form.tenant.value = session.tenant;
  form.scopes.value = store.getItem("scopes") || "";
  form.token.value = session.token;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    store.setItem("tenant", form.tenant.value.trim());
    store.setItem("scopes", form.scopes.value.trim());
    store.setItem("token", form.token.value.trim());
    const q = new URLSearchParams(location.search);
    q.delete("tenant"); q.delete("scopes");
    location.assign(href(here(), Object.fromEntries(q)));
  });
  const signOut = document.getElementById("sign-out");
  signOut.hidden = !session.token;
  signOut.addEventListener("click", () => { store.removeItem("token"); location.reload(); });
  document.getElementById("who").textContent = whoText();
  for (const a of document.querySelectorAll("a[data-nav]")) {
    const path = a.dataset.nav;
    if (here() === path || (path !== "/console" && here().startsWith(path))) a.setAttribute("aria-current", "page");
    a.setAttribute("href", href(path));
  }
}

/** Who this session is and the scopes the pages judge their buttons by. */
function whoText() {
  const scopes = heldScopes();
  const list = scopes.length ? scopes.join(" ") : "none";
  if (session.token) {
    const c = tokenClaims();
    if (!c) return "Token: not a JWT the console can read; the API decides.";
    const until = c.exp ? `; expires ${new Date(c.exp * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC` : "";
    return `Signed in as ${c.sub || "?"} (tenant ${c.tenantId || "?"}); scopes: ${list}${until}`;
  }
  if (session.tenant) return `Tenant ${session.tenant} (local); scopes: ${session.scopes === null ? "every scope" : list}`;
  return "";
}

function route() {
  sessionForm();
  if (!session.tenant && !session.token) {
    page("Sign in", el("p", {}, "Locally, give the tenant whose events to show in the Tenant field above, or open this address with ?tenant=NAME. On AWS, sign in with an access token:"),
      signInPanel(null));
    document.getElementById("tenant").focus();
    return;
  }
  const parts = here().replace(/\/+$/, "").split("/").slice(2).map(decodeURIComponent);
  const [section, a, b] = parts;
  if (!section) return feedPage();
  if (section === "events" && a) return eventPage(a);
  if (section === "aggregates" && a && b) return aggregatePage(a, b);
  if (section === "correlations" && a) return correlationPage(a);
  if (section === "dead-letters") return deadLettersPage();
  if (section === "handlers") return handlersPage();
  if (section === "subscriptions") return a ? subscriptionPage(a) : subscriptionsPage();
  page("Not found", el("p", {}, "No such console page. "), link("/console", "Live feed"));
}
route();
