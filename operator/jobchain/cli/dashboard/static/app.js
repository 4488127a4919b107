/* jobchain dashboard: a small single-page app without dependencies.
 * The server decides what to show (layout, edge states); this file draws it and keeps it
 * live through server-sent events. Routes: #/ (executions), #/executions/NS/NAME,
 * #/workflows, #/workflows/NS/NAME. */
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const ICON = { Pending: "○", Running: "↻", Waiting: "⏸", Succeeded: "✓", Failed: "✕", Skipped: "↷", Cancelled: "■" };
const PHASES = ["Pending", "Running", "Succeeded", "Failed", "Cancelled"];
const SVGNS = "http://www.w3.org/2000/svg";
const state = { info: null, namespace: "", streams: [], timers: [], page: null };

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function badge(phase) {
  const p = phase || "none";
  return `<span class="badge ${p}" data-phase="${esc(p)}"><span class="icon" aria-hidden="true">${ICON[phase] || "…"}</span>${esc(phase || "not started")}</span>`;
}
function parseTime(iso) { return iso ? Date.parse(iso) : NaN; }
function fmtDuration(seconds) {
  if (!isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds)), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h) return `${h}h${String(m).padStart(2, "0")}m${String(r).padStart(2, "0")}s`;
  if (m) return `${m}m${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}
function fmtTime(iso) {
  const t = parseTime(iso);
  if (!isFinite(t)) return "";
  const d = new Date(t), today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}
function ago(iso) {
  const t = parseTime(iso);
  return isFinite(t) ? fmtDuration((Date.now() - t) / 1000) + " ago" : "";
}
function span(start, end) {
  const a = parseTime(start), b = end ? parseTime(end) : Date.now();
  return isFinite(a) ? fmtDuration((b - a) / 1000) + (end ? "" : "…") : "";
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 && body.login === "token" && !state.askedToken) {
    // The in-cluster dashboard wants a bearer token: kept in a cookie of this page only.
    state.askedToken = true;
    const token = window.prompt(`${body.error}\n\nBearer token:`);
    if (token) {
      document.cookie = `jobchain-token=${encodeURIComponent(token.trim())}; path=/; SameSite=Strict`;
      location.reload();
    }
  }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function stream(url, handlers) {
  const source = new EventSource(url);
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (ev) => fn(JSON.parse(ev.data)));
  }
  source.onerror = () => setCluster({ connected: false, message: "the dashboard server is not answering; retrying" });
  state.streams.push(source);
  return source;
}
function closeAll() {
  state.streams.forEach((s) => s.close());
  state.timers.forEach((t) => clearInterval(t));
  state.streams = [];
  state.timers = [];
}

function setCluster(c) {
  const el = $("#cluster"), banner = $("#banner");
  el.className = "cluster " + (c.connected ? "ok" : "down");
  el.textContent = c.connected ? "live" : "cluster unreachable";
  banner.hidden = !!c.connected;
  banner.textContent = c.connected ? "" : c.message + (c.since ? ` (since ${fmtTime(c.since)}; showing the last state seen)` : "");
}

/* ---- routing and the namespace picker ------------------------------------------------ */
function parseHash() {
  const [path, query] = (location.hash.replace(/^#/, "") || "/").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query || "") };
}
function nsQuery() { return state.namespace ? `?namespace=${encodeURIComponent(state.namespace)}` : ""; }

function fillNamespaces() {
  const select = $("#namespace");
  const info = state.info;
  const options = [];
  if (info.scope === null) options.push(`<option value="">All namespaces</option>`);
  for (const ns of info.namespaces) options.push(`<option value="${esc(ns)}">${esc(ns)}</option>`);
  select.innerHTML = options.join("");
  if (info.scope) state.namespace = info.scope;
  select.value = state.namespace;
  if (select.value !== state.namespace) state.namespace = select.value;
}

function route() {
  closeAll();
  const { parts, query } = parseHash();
  const main = $("#main");
  main.removeAttribute("data-rendered");
  if (query.get("ns") !== null && state.info && state.info.scope === null) state.namespace = query.get("ns");
  $("#namespace").value = state.namespace;
  $("#nav-executions").classList.toggle("active", parts[0] !== "workflows");
  $("#nav-workflows").classList.toggle("active", parts[0] === "workflows");
  if (parts[0] === "executions" && parts.length === 3) return executionPage(parts[1], parts[2]);
  if (parts[0] === "workflows" && parts.length === 3) return workflowPage(parts[1], parts[2]);
  if (parts[0] === "workflows") return workflowsPage();
  return executionsPage(query);
}

/* ---- Executions ---------------------------------------------------------------------- */
function executionsPage(query) {
  const main = $("#main");
  document.title = "Executions · jobchain";
  main.innerHTML = `
    <h1>Executions</h1>
    <div class="filters">
      <label>Phase <select id="f-phase"><option value="">all</option>${PHASES.map((p) => `<option>${p}</option>`).join("")}</select></label>
      <label>Workflow <select id="f-workflow"><option value="">all</option></select></label>
      <span class="note" id="count"></span>
    </div>
    <div class="table-wrap"><table id="executions">
      <thead><tr><th>Name</th>${state.namespace ? "" : '<th class="hide-phone">Namespace</th>'}<th class="hide-phone">Workflow</th><th>Phase</th><th>Progress</th><th class="hide-phone">Started</th><th>Duration</th><th class="hide-narrow">Message</th></tr></thead>
      <tbody></tbody></table></div>
    <p class="empty" id="empty" hidden>No executions here yet. Create one (<code>jobchain run WORKFLOW</code>): it appears at once.</p>`;
  const rows = new Map();
  const fresh = new Set();
  const phase = $("#f-phase"), workflow = $("#f-workflow");
  phase.value = query.get("phase") || "";
  let wanted = query.get("workflow") || "";
  const key = (r) => `${r.namespace}/${r.name}`;

  function draw() {
    const names = [...new Set([...rows.values()].map((r) => r.workflow))].filter(Boolean).sort();
    const current = workflow.value || wanted;
    workflow.innerHTML = `<option value="">all</option>` + names.map((n) => `<option>${esc(n)}</option>`).join("");
    if (names.includes(current)) workflow.value = current;
    const shown = [...rows.values()]
      .filter((r) => !phase.value || (r.phase || "Pending") === phase.value)
      .filter((r) => !workflow.value || r.workflow === workflow.value)
      .sort((a, b) => (b.created || "").localeCompare(a.created || "") || a.name.localeCompare(b.name));
    $("#executions tbody").innerHTML = shown.map((r) => {
      const href = `#/executions/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`;
      return `<tr data-name="${esc(r.name)}" data-phase="${esc(r.phase)}" class="${fresh.has(key(r)) ? "flash" : ""}">
        <td><a href="${href}">${esc(r.name)}</a></td>${state.namespace ? "" : `<td class="hide-phone">${esc(r.namespace)}</td>`}
        <td class="hide-phone">${esc(r.workflow)}</td><td>${badge(r.phase)}</td><td>${esc(r.progress)}</td>
        <td class="hide-phone" title="${esc(r.startedAt || r.created || "")}">${esc(ago(r.startedAt || r.created))}</td>
        <td>${esc(r.duration || (r.phase === "Running" ? span(r.startedAt) : ""))}</td>
        <td class="msg hide-narrow">${esc(r.message)}</td></tr>`;
    }).join("");
    fresh.clear();
    $("#count").textContent = `${shown.length} of ${rows.size}`;
    $("#empty").hidden = rows.size > 0;
    $("#main").setAttribute("data-rendered", "executions");
  }
  function syncQuery() {
    const q = new URLSearchParams();
    if (state.namespace) q.set("ns", state.namespace);
    if (phase.value) q.set("phase", phase.value);
    if (workflow.value) q.set("workflow", workflow.value);
    history.replaceState(null, "", "#/" + (q.toString() ? "?" + q : ""));
  }
  phase.onchange = () => { syncQuery(); draw(); };
  workflow.onchange = () => { wanted = workflow.value; syncQuery(); draw(); };
  stream(`/api/events${nsQuery()}`, {
    cluster: setCluster,
    snapshot: (items) => { rows.clear(); items.forEach((r) => rows.set(key(r), r)); draw(); },
    upsert: (r) => { fresh.add(key(r)); rows.set(key(r), r); draw(); },
    remove: (r) => { rows.delete(key(r)); draw(); },
  });
  state.timers.push(setInterval(draw, 5000));
}

/* ---- the graph ----------------------------------------------------------------------- */
function edgePath(points) {
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1], [x1, y1] = points[i];
    if (y0 === y1) { d += ` L${x1},${y1}`; continue; }
    const dx = Math.max(20, (x1 - x0) / 2);
    d += ` C${x0 + dx},${y0} ${x1 - dx},${y1} ${x1},${y1}`;
  }
  return d;
}
function clip(text, n) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }
function edgeLabel(e) { return e.kind === "condition" ? e.when || "" : e.kind === "success" ? "" : e.kind; }

/** Draws a graph into box; returns {update(statuses, edges), select(name)}. onSelect(name) on click/Enter. */
function drawGraph(box, graph, onSelect) {
  const L = graph.layout;
  const markers = ["success", "failure", "always", "condition"].map((k) =>
    `<marker id="arrow-${k}" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrow-${k}" fill="var(--e-${k})"/></marker>`).join("");
  const edges = graph.edges.map((e, i) => {
    const route = L.edges[i] && L.edges[i].source === e.source && L.edges[i].target === e.target ? L.edges[i] : L.edges.find((r) => r.source === e.source && r.target === e.target);
    if (!route) return "";
    const p = route.points, label = edgeLabel(e);
    // The label sits on the middle of the edge's last stretch (with a halo): edges that fan out
    // of one node, or into one, have their middles apart, so labels do not cover each other.
    const [ax, ay] = p[p.length - 2], [ex, ey] = p[p.length - 1];
    const lx = (ax + ex) / 2, ly = (ay + ey) / 2 - 8;
    return `<g class="edge ${e.kind} ${e.state || "static"}" data-source="${esc(e.source)}" data-target="${esc(e.target)}" data-kind="${e.kind}">
      <path d="${edgePath(p)}" marker-end="url(#arrow-${e.kind})"/>${label ? `<text x="${lx}" y="${ly}" text-anchor="middle">${esc(clip(label, 26))}<title>${esc(e.kind)}: ${esc(label)}</title></text>` : ""}</g>`;
  }).join("");
  const nodes = graph.nodes.map((n) => {
    const b = L.nodes[n.name];
    return `<g class="node none${n.unknown ? " unknown" : ""}" data-name="${esc(n.name)}" tabindex="0" role="button" aria-label="${esc(n.name)}" transform="translate(${b.x},${b.y})">
      <rect class="focus" x="-4" y="-4" width="${b.w + 8}" height="${b.h + 8}" rx="10"/>
      <rect class="box" width="${b.w}" height="${b.h}" rx="8"/>
      <text class="icon" x="12" y="23" aria-hidden="true"></text>
      <text class="name" x="32" y="23">${esc(clip(n.name, 20))}</text>
      <text class="sub" x="32" y="42">${n.unknown ? "unknown node" : esc(clip(n.join === "any" ? "join: any" : n.image || "", 24))}</text>
      <title>${esc(n.name)}</title></g>`;
  }).join("");
  box.innerHTML = `<div class="zoom"><button type="button" data-z="in" aria-label="zoom in">+</button><button type="button" data-z="out" aria-label="zoom out">−</button><button type="button" data-z="fit" aria-label="fit to view">⤢</button></div>
    <svg role="group" aria-label="workflow graph: ${graph.nodes.length} nodes"><defs>${markers}
      <pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="8" height="8" fill="#fafafa"/><line x1="0" y1="0" x2="0" y2="8" stroke="#d6d6d6" stroke-width="3"/></pattern></defs>
      <g class="viewport">${edges}${nodes}</g></svg>`;
  const svg = $("svg", box), vp = $(".viewport", svg);
  const view = { x: 0, y: 0, k: 1 };
  const apply = () => vp.setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
  function fit() {
    const W = svg.clientWidth || 800, H = svg.clientHeight || 400;
    view.k = Math.max(0.08, Math.min(W / L.width, H / L.height, 1.25));
    view.x = (W - L.width * view.k) / 2;
    view.y = (H - L.height * view.k) / 2;
    apply();
  }
  function zoomAt(factor, cx, cy) {
    const k = Math.max(0.05, Math.min(4, view.k * factor));
    view.x = cx - ((cx - view.x) * k) / view.k;
    view.y = cy - ((cy - view.y) * k) / view.k;
    view.k = k;
    apply();
  }
  box.querySelectorAll(".zoom button").forEach((b) => b.addEventListener("click", () => {
    const W = svg.clientWidth / 2, H = svg.clientHeight / 2;
    if (b.dataset.z === "fit") fit(); else zoomAt(b.dataset.z === "in" ? 1.25 : 0.8, W, H);
  }));
  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = svg.getBoundingClientRect();
    zoomAt(ev.deltaY < 0 ? 1.15 : 1 / 1.15, ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (ev) => {
    if (ev.target.closest(".node")) return;
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y };
    svg.setPointerCapture(ev.pointerId);
    svg.classList.add("panning");
  });
  svg.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    view.x = drag.vx + ev.clientX - drag.x;
    view.y = drag.vy + ev.clientY - drag.y;
    apply();
  });
  const end = () => { drag = null; svg.classList.remove("panning"); };
  svg.addEventListener("pointerup", end);
  svg.addEventListener("pointercancel", end);
  const byName = new Map();
  svg.querySelectorAll(".node").forEach((g) => {
    byName.set(g.dataset.name, g);
    g.addEventListener("click", () => onSelect(g.dataset.name));
    g.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); onSelect(g.dataset.name); }
    });
    g.addEventListener("focus", () => {  // keep the focused node in view
      const b = L.nodes[g.dataset.name], W = svg.clientWidth, H = svg.clientHeight;
      const x = view.x + b.x * view.k, y = view.y + b.y * view.k;
      if (x < 0 || y < 0 || x + b.w * view.k > W || y + b.h * view.k > H) {
        view.x = W / 2 - (b.x + b.w / 2) * view.k;
        view.y = H / 2 - (b.y + b.h / 2) * view.k;
        apply();
      }
    });
  });
  fit();
  const edgeEls = [...svg.querySelectorAll(".edge")];
  return {
    update(statuses, edgesNow) {
      for (const [name, g] of byName) {
        const s = statuses ? statuses[name] : null;
        if (!statuses || g.classList.contains("unknown")) continue;
        const phase = s ? s.phase : "Pending";
        g.classList.remove("none", "Pending", "Running", "Waiting", "Succeeded", "Failed", "Skipped", "Cancelled");
        g.classList.add(phase);
        g.dataset.phase = phase;
        g.setAttribute("aria-label", `${name}: ${phase}`);
        $(".icon", g).textContent = ICON[phase] || "";
        const took = s && s.startedAt && phase !== "Skipped" ? " · " + span(s.startedAt, s.finishedAt) : "";
        $(".sub", g).textContent = phase + took + (s && s.retries ? ` · ${s.retries} retr${s.retries > 1 ? "ies" : "y"}` : "");
      }
      if (edgesNow) edgesNow.forEach((e, i) => {
        const el = edgeEls[i];
        if (!el) return;
        el.classList.remove("fired", "not-held", "undecided", "static");
        el.classList.add(e.state || "static");
        el.dataset.state = e.state || "static";
      });
    },
    select(name) {
      byName.forEach((g, n) => g.classList.toggle("selected", n === name));
    },
    fit,
  };
}

const LEGEND = `<div class="legend" aria-label="legend">
  <span><span class="sw" style="border-color:var(--e-success)"></span>success</span>
  <span><span class="sw" style="border-color:var(--e-failure);border-top-style:dashed"></span>failure</span>
  <span><span class="sw" style="border-color:var(--e-always)"></span>always</span>
  <span><span class="sw" style="border-color:var(--e-condition)"></span>condition (label: when)</span>
  <span>thick: fired · faint: did not hold</span></div>`;

/* ---- Execution ----------------------------------------------------------------------- */
function executionPage(ns, name) {
  const main = $("#main");
  document.title = `${name} · jobchain`;
  main.innerHTML = `<h1><span id="x-name">${esc(name)}</span> <span id="x-phase"></span></h1>
    <div class="meta" id="x-meta"></div><p class="exec-message" id="x-message"></p>
    <div id="x-gates"></div>
    ${LEGEND}
    <div class="layout"><div><div class="graph-box" id="graph"><p class="note" style="padding:12px">loading…</p></div>
      <div class="gantt" id="gantt" aria-label="timeline"></div></div>
      <aside class="panel" id="panel" aria-live="polite"><p class="note">Select a node (click, or Tab then Enter) to see its output and log.</p></aside></div>`;
  let graph = null, shapeKey = "", view = null, selected = null, shownPanelFor = null, follow = null;

  function render(v) {
    view = v;
    $("#x-phase").innerHTML = badge(v.phase);
    const params = Object.entries(v.params || {}).map(([k, val]) => `${esc(k)}=${esc(val)}`).join(", ");
    $("#x-meta").innerHTML = [
      ["Namespace", v.namespace], ["Workflow", v.workflow], ["Progress", v.progress],
      ["Started", fmtTime(v.startedAt)], ["Duration", v.duration || (v.startedAt ? span(v.startedAt, v.finishedAt) : "")],
      ["Reason", v.reason], ["Params", params], ["Cancel", v.cancel ? "requested" : ""],
    ].filter(([, x]) => x).map(([k, x]) => `<span>${k}: <b>${esc(x)}</b></span>`).join("");
    const msg = $("#x-message");
    msg.textContent = v.message || (v.phase ? "" : "waiting for the operator to start it");
    msg.className = "exec-message " + (v.phase || "");
    $("#x-gates").innerHTML = (v.waiting || []).map((g) => `<div class="gate" data-gate="${esc(g.name)}">
      <b>${esc(g.name)}</b> waits for approval${g.message ? ": " + esc(g.message) : ""}${g.deadline ? ` (until ${esc(fmtTime(g.deadline))})` : ""}
      <br>approve: <code>${esc(g.approve)}</code><br>deny: <code>${esc(g.deny)}</code></div>`).join("");
    if (!v.graph) {
      $("#graph").innerHTML = `<p class="note" style="padding:12px">The workflow of this execution cannot be read yet.</p>`;
      return;
    }
    const key = JSON.stringify([v.graph.nodes.map((n) => n.name), v.graph.edges.map((e) => [e.source, e.target, e.kind])]);
    if (key !== shapeKey) {
      shapeKey = key;
      graph = drawGraph($("#graph"), v.graph, select);
    }
    graph.update(v.statuses, v.graph.edges);
    graph.select(selected);
    gantt(v);
    if (selected) panel(false);
    if (main.getAttribute("data-rendered") !== "execution") {
      main.setAttribute("data-rendered", "execution");
      window.jobchainRenderedAt = performance.now();
    }
  }

  function gantt(v) {
    const rows = v.graph.nodes.map((n) => [n.name, v.statuses[n.name]]).filter(([, s]) => s && s.startedAt);
    const el = $("#gantt");
    if (!rows.length) { el.innerHTML = `<span class="note">Timeline: no node has started yet.</span>`; return; }
    const t0 = Math.min(...rows.map(([, s]) => parseTime(s.startedAt)));
    const t1 = Math.max(...rows.map(([, s]) => (s.finishedAt ? parseTime(s.finishedAt) : Date.now())), t0 + 1000);
    const pct = (t) => ((t - t0) / (t1 - t0)) * 100;
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<span style="left:${f * 100}%">+${fmtDuration(((t1 - t0) * f) / 1000)}</span>`).join("");
    el.innerHTML = `<div class="axis"><span>node</span><div class="ticks">${ticks}</div></div>` + rows.map(([name, s]) => {
      const a = parseTime(s.startedAt), b = s.finishedAt ? parseTime(s.finishedAt) : Date.now();
      return `<div class="row" data-name="${esc(name)}" title="${esc(name)}: ${esc(s.phase)} ${esc(span(s.startedAt, s.finishedAt))}">
        <span class="label">${esc(name)}</span><div class="track"><div class="bar ${esc(s.phase)}" style="left:${pct(a)}%;width:${Math.max(0.3, pct(b) - pct(a))}%"></div></div></div>`;
    }).join("");
    el.querySelectorAll(".row").forEach((r) => r.addEventListener("click", () => select(r.dataset.name)));
  }

  function select(nodeName) {
    selected = nodeName;
    if (graph) graph.select(nodeName);
    panel(true);
  }

  function panel(force) {
    const n = view.graph.nodes.find((x) => x.name === selected);
    const s = (view.statuses || {})[selected] || { phase: "Pending" };
    const fingerprint = JSON.stringify(s);
    if (!force && shownPanelFor === selected + fingerprint) return;
    const logKeep = $("#node-log") && shownPanelFor && shownPanelFor.startsWith(selected) ? $("#node-log").textContent : null;
    shownPanelFor = selected + fingerprint;
    const output = s.output === undefined || s.output === null ? null : typeof s.output === "string" ? s.output : JSON.stringify(s.output, null, 2);
    const rows = [["Phase", badge(s.phase)], ["Started", esc(fmtTime(s.startedAt))], ["Finished", esc(fmtTime(s.finishedAt))],
      ["Duration", esc(s.startedAt ? span(s.startedAt, s.finishedAt) : "")], ["Retries", esc(s.retries || 0)],
      ["Exit code", esc(s.exitCode ?? "")], ["Input from", esc(s.inputFrom || (s.startedAt && !view.graph.edges.some((e) => e.target === selected) ? "none (a start node)" : ""))],
      ["Job", esc(s.jobName || "")], ["Pod", esc(s.podName || "")], ["Image", esc(n ? n.image : "")]];
    $("#panel").innerHTML = `<h2>${esc(selected)} ${badge(s.phase)}</h2>
      <dl>${rows.filter(([, v]) => v !== "").map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("")}</dl>
      ${s.message ? `<div class="message ${s.phase === "Failed" ? "failed" : ""}" id="node-message">${esc(s.message)}</div>` : ""}
      <h2>Output${s.outputTruncated ? ' <span class="note">(truncated)</span>' : ""}</h2>
      ${output === null ? `<p class="note" id="node-output-none">no output recorded</p>` : `<pre id="node-output">${esc(output)}</pre>`}
      <h2 id="log-title">Log</h2><pre class="log" id="node-log">${logKeep === null ? "loading…" : esc(logKeep)}</pre>`;
    if (force || logKeep === null || s.phase !== "Running") loadLog(s);
  }

  async function loadLog(s) {
    if (follow) { follow.close(); follow = null; }
    const node = selected, log = $("#node-log");
    if (!log) return;
    try {
      const r = await api(`/api/logs/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/${encodeURIComponent(node)}`);
      if (node !== selected || !$("#node-log")) return;
      const parts = [];
      r.attempts.forEach((a, i) => {
        if (r.attempts.length > 1) parts.push(`--- pod ${a.pod} (attempt ${i + 1} of ${r.attempts.length}) ---`);
        parts.push(a.text !== null ? a.text : `(${a.note || "no log"})`);
      });
      if (r.recorded !== null) parts.push(`(${r.recordedNote})\n${r.recorded}`);
      if (!r.attempts.length && r.recorded === null) parts.push(s.phase === "Pending" ? "(not started yet)" : s.phase === "Skipped" || s.phase === "Cancelled" ? "(no pod ran)" : "(no pod found)");
      const last = r.attempts[r.attempts.length - 1];
      if (last && last.running && s.phase === "Running") {
        const tail = parts.join("\n");
        let followed = false;
        parts.pop();
        $("#node-log").textContent = parts.join("\n");
        $("#log-title").classList.add("following");
        follow = new EventSource(`/api/follow/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/${encodeURIComponent(node)}?pod=${encodeURIComponent(last.pod)}`);
        follow.onerror = () => {  // never reconnect: that would repeat the log
          if (follow) follow.close();
          const el = $("#node-log"), t = $("#log-title");
          if (t) t.classList.remove("following");
          // Refused (429: too many logs followed at once) or cut before a word: show the tail read.
          if (el && !followed && node === selected) el.textContent = tail + "\n(not followed live: the dashboard follows a few logs at a time; select the node again later)";
        };
        state.streams.push(follow);
        follow.addEventListener("chunk", (ev) => {
          followed = true;
          const el = $("#node-log");
          if (!el) return;
          const stick = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
          el.textContent += JSON.parse(ev.data);
          if (stick) el.scrollTop = el.scrollHeight;
        });
        follow.addEventListener("end", () => {
          follow.close();
          const t = $("#log-title");
          if (t) t.classList.remove("following");
          // The container had not started yet, or the stream was cut: read again while it runs.
          const now = (view.statuses || {})[node];
          if (node === selected && now && now.phase === "Running") setTimeout(() => { if (node === selected) loadLog(now); }, 1500);
        });
        return;
      }
      $("#node-log").textContent = parts.join("\n") || "(empty log)";
    } catch (err) {
      const el = $("#node-log");
      if (el) { el.textContent = `(cannot read the log: ${err.message})`; }
    }
  }

  stream(`/api/events?namespace=${encodeURIComponent(ns)}&execution=${encodeURIComponent(name)}`, {
    cluster: setCluster,
    execution: render,
    gone: () => {
      $("#graph").innerHTML = `<p class="note error" style="padding:12px">Execution ${esc(name)} does not exist in namespace ${esc(ns)} (or was deleted).</p>`;
      main.setAttribute("data-rendered", "gone");
    },
  });
  state.timers.push(setInterval(() => { if (view && view.phase === "Running") { graph && graph.update(view.statuses, null); gantt(view); } }, 1000));
}

/* ---- Workflows ----------------------------------------------------------------------- */
async function workflowsPage() {
  const main = $("#main");
  document.title = "Workflows · jobchain";
  main.innerHTML = `<h1>Workflows</h1><div class="table-wrap"><table id="workflows"><thead><tr><th>Name</th>${state.namespace ? "" : "<th>Namespace</th>"}<th>Nodes</th><th>Params</th><th>Ready</th><th class="hide-narrow">Message</th></tr></thead><tbody><tr><td colspan="6" class="note">loading…</td></tr></tbody></table></div>`;
  try {
    const r = await api(`/api/workflows${nsQuery()}`);
    $("#workflows tbody").innerHTML = r.items.map((w) => `<tr data-name="${esc(w.name)}">
      <td><a href="#/workflows/${encodeURIComponent(w.namespace)}/${encodeURIComponent(w.name)}">${esc(w.name)}</a></td>
      ${state.namespace ? "" : `<td>${esc(w.namespace)}</td>`}<td>${w.nodes}</td><td>${esc(w.params.join(", "))}</td>
      <td>${w.ready === "True" ? badge("Succeeded").replace(">Succeeded<", ">Ready<") : w.ready === "False" ? badge("Failed").replace(">Failed<", ">Invalid<") : esc(w.ready)}</td>
      <td class="msg hide-narrow">${esc(w.message)}</td></tr>`).join("") || `<tr><td colspan="6" class="empty">No workflows here.</td></tr>`;
  } catch (err) {
    $("#workflows tbody").innerHTML = `<tr><td colspan="6" class="error">${esc(err.message)}</td></tr>`;
  }
  main.setAttribute("data-rendered", "workflows");
}

async function workflowPage(ns, name) {
  const main = $("#main");
  document.title = `${name} · jobchain`;
  main.innerHTML = `<h1>Workflow ${esc(name)}</h1><div id="w-meta"></div>${LEGEND}
    <div class="layout"><div class="graph-box" id="graph"></div>
    <aside class="panel" id="panel"><p class="note">Select a node to see its script.</p></aside></div>`;
  let w;
  try { w = await api(`/api/workflows/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`); }
  catch (err) { $("#graph").innerHTML = `<p class="error" style="padding:12px">${esc(err.message)}</p>`; return; }
  const params = w.paramSpecs.map((p) => `<tr><td>${esc(p.name)}</td><td>${p.default === undefined || p.default === null ? "<i>required</i>" : esc(p.default)}</td><td>${esc(p.description || "")}</td></tr>`).join("");
  const defaults = Object.entries(w.defaults).map(([k, v]) => `${esc(k)}: <b>${esc(v)}</b>`).join(" · ");
  $("#w-meta").innerHTML = `<div class="meta"><span>Namespace: <b>${esc(w.namespace)}</b></span><span>Nodes: <b>${w.nodes}</b></span><span>Parallelism: <b>${esc(w.parallelism)}</b></span>${defaults ? `<span>Defaults: ${defaults}</span>` : ""}</div>
    ${w.message && w.ready === "False" ? `<p class="exec-message Failed">${esc(w.message)}</p>` : ""}
    ${params ? `<div class="table-wrap params"><table><thead><tr><th>Param</th><th>Default</th><th>Description</th></tr></thead><tbody>${params}</tbody></table></div>` : ""}`;
  if (!w.graph) return;
  const g = drawGraph($("#graph"), w.graph, (node) => {
    g.select(node);
    const n = w.graph.nodes.find((x) => x.name === node);
    const out = w.graph.edges.filter((e) => e.source === node).map((e) => `→ ${esc(e.target)} <span class="note">[${esc(e.kind)}${e.when ? " " + esc(e.when) : ""}]</span>`).join("<br>");
    const body = n.script !== null && n.script !== undefined ? n.script : [...(n.command || []), ...(n.args || [])].join(" ");
    $("#panel").innerHTML = `<h2>${esc(node)}</h2><dl>
      <dt>Image</dt><dd>${esc(n.image)}</dd><dt>Join</dt><dd>${esc(n.join)}</dd><dt>Retries</dt><dd>${esc(n.retries ?? 0)}</dd>
      <dt>Timeout</dt><dd>${n.timeoutSeconds ? esc(n.timeoutSeconds) + "s" : "none"}</dd><dt>Output from</dt><dd>${esc(n.outputFrom)}</dd>
      <dt>Next</dt><dd>${out || "none"}</dd></dl><h2>${n.script !== null && n.script !== undefined ? "Script" : "Command"}</h2><pre id="node-script">${esc(body)}</pre>`;
  });
  g.update(null, null);
  main.setAttribute("data-rendered", "workflow");
}

/* ---- start ---------------------------------------------------------------------------- */
async function start() {
  try {
    state.info = await api("/api/info");
  } catch (err) {
    $("#main").innerHTML = `<p class="error">Cannot reach the dashboard server: ${esc(err.message)}</p>`;
    return;
  }
  state.namespace = localStorage.getItem("jobchain.namespace") ?? "";
  fillNamespaces();
  setCluster(state.info.cluster);
  $("#namespace").addEventListener("change", (ev) => {
    state.namespace = ev.target.value;
    localStorage.setItem("jobchain.namespace", state.namespace);
    const section = parseHash().parts[0] === "workflows" ? "workflows" : "";
    const q = state.namespace ? `?ns=${encodeURIComponent(state.namespace)}` : "";
    const target = `#/${section}${q}`;
    if (location.hash === target) route(); else location.hash = target;
  });
  window.addEventListener("hashchange", route);
  route();
}
start();
