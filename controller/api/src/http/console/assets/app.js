// Switchyard console: plain JavaScript, no build step. Every figure comes from the same
// JSON API the clients use (/v1/...), with the API token kept in this tab's sessionStorage.
"use strict";

const TOKEN_KEY = "switchyard-token";
const POLL_MS = 2000;
const PAGE = 50; // nodes per page of the cluster view
const history = new Map(); // device key -> last 30 utilisation samples (sparklines)
let timer = null;
let page = 0;
let selectedRequest = null;
let modelError = ""; // the last load/unload refusal, kept across the models view's refreshes

const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const gib = (b) => (b == null ? "—" : (b / 2 ** 30).toFixed(1));
const pct = (r) => (r == null ? "—" : `${Math.round(r * 100)} %`);
const view = () => document.getElementById("view");

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body && !headers["Content-Type"]) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  if (resp.status === 401) { showLogin("The token was refused or is missing: sign in."); throw new ApiError(401, "unauthorized"); }
  if (!resp.ok) {
    let message = `${resp.status}`;
    try { message = (await resp.json()).error.message; } catch (_) { /* not JSON */ }
    throw new ApiError(resp.status, message);
  }
  return options.raw ? resp : resp.json();
}

function showLogin(why) {
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = why || "";
  view().innerHTML = "";
  stopPolling();
}

function spark(key, value) {
  const h = history.get(key) || [];
  h.push(value ?? 0);
  if (h.length > 30) h.shift();
  history.set(key, h);
  const pts = h.map((v, i) => `${(i * 80) / 29},${20 - v * 20}`).join(" ");
  return `<svg class="spark" viewBox="0 0 80 20" role="img" aria-label="utilisation history"><polyline points="${pts}"/></svg>`;
}

function stopPolling() { if (timer) { clearInterval(timer); timer = null; } }
function poll(fn) {
  const tick = () => Promise.resolve(fn()).catch((e) => { if (e.status !== 401) view().innerHTML = `<p class="error">${esc(e.message)}</p>`; });
  stopPolling();
  timer = setInterval(tick, POLL_MS);
  return tick();
}

// --- Cluster -------------------------------------------------------------------------------
async function cluster() {
  const data = await api("/v1/console/cluster");
  const nodes = data.nodes;
  const pages = Math.max(1, Math.ceil(nodes.length / PAGE));
  page = Math.min(page, pages - 1);
  const rows = nodes.slice(page * PAGE, page * PAGE + PAGE).map((n) => {
    const devices = n.devices.map((d) => `<tr data-device="${esc(d.id)}">
      <td>${esc(n.name)}</td><td>${esc(d.id)}</td><td>${esc(d.kind)}</td><td class="wide">${esc(d.model.startsWith(d.vendor) ? d.model : `${d.vendor} ${d.model}`)}</td>
      <td>${gib(d.memory_total_bytes - d.memory_free_bytes)} / ${gib(d.memory_total_bytes)}</td>
      <td>${pct(d.utilization_ratio)} ${spark(`${n.name}/${d.id}`, d.utilization_ratio)}</td>
      <td>${d.temperature_celsius == null ? "—" : esc(d.temperature_celsius.toFixed(0)) + " °C"}</td>
      <td>${d.power_watts == null ? "—" : esc(d.power_watts.toFixed(0)) + " W"}</td>
      <td>${esc(d.tops.toFixed(1))} <span class="muted">(${esc(d.tops_source)})</span></td>
      <td>${esc(d.resident.join(", ")) || "<span class=muted>—</span>"}</td>
      <td class="${d.healthy ? "ok" : "bad"}">${d.healthy ? "healthy" : "unhealthy: " + esc(d.health_reason)}${d.unusable.map((u) => `<div class="bad">${esc(u)}</div>`).join("")}</td></tr>`).join("");
    return devices;
  }).join("");
  const nodeRows = nodes.slice(page * PAGE, page * PAGE + PAGE).map((n) =>
    `<tr><td>${esc(n.name)}</td><td class="${n.state === "ready" ? "ok" : "bad"}">${esc(n.state)}</td><td>${(n.heartbeat_age_ms / 1000).toFixed(1)} s</td><td>${esc(n.version)}</td><td>${n.devices.length}</td></tr>`).join("");
  view().innerHTML = `<h1>Cluster</h1>
    <p class="muted">${nodes.length} node(s), ${nodes.reduce((a, n) => a + n.devices.length, 0)} device(s); refreshed every ${POLL_MS / 1000} s.</p>
    <div class="pager"><button class="secondary" id="prev" ${page === 0 ? "disabled" : ""}>Previous</button>
      <span>page ${page + 1} of ${pages}</span><button class="secondary" id="next" ${page + 1 >= pages ? "disabled" : ""}>Next</button></div>
    <div class="scroll"><table id="nodes"><thead><tr><th>Node</th><th>State</th><th>Heartbeat</th><th>Version</th><th>Devices</th></tr></thead><tbody>${nodeRows}</tbody></table></div>
    <h2>Devices</h2>
    <div class="scroll"><table id="devices"><thead><tr><th>Node</th><th>Device</th><th>Kind</th><th class="wide">Model</th><th>Memory GiB</th><th>Utilisation</th><th>Temp</th><th>Power</th><th>TOPS</th><th>Resident</th><th>Health</th></tr></thead><tbody>${rows}</tbody></table></div>`;
  document.getElementById("prev").onclick = () => { page -= 1; cluster(); };
  document.getElementById("next").onclick = () => { page += 1; cluster(); };
}

// --- Models --------------------------------------------------------------------------------
async function models() {
  const data = await api("/v1/models");
  const rows = data.data.map((m) => {
    const sy = m.switchyard || {};
    const where = (sy.loaded_on || []).map((p) => `${esc(p.node)}/${esc(p.device)} (${esc(p.backend)})${p.layout ? `<div class="muted">partial: ${esc(p.layout)}</div>` : ""}`).join("<br>");
    const actions = sy.stage === "generate"
      ? `<button class="secondary" data-load="${esc(m.id)}">Load</button> <button class="secondary" data-keep="${esc(m.id)}" title="keep it loaded until unloaded">Keep</button> <button class="secondary" data-unload="${esc(m.id)}">Unload</button>`
      : "";
    return `<tr data-model="${esc(m.id)}"><td>${esc(m.id)}</td><td>${esc(sy.stage)}</td><td>${esc(sy.tier) || "—"}</td><td>${gib(sy.memory_bytes)}</td><td class="loaded">${where || "<span class=muted>not loaded</span>"}</td><td>${actions}</td></tr>`;
  }).join("");
  view().innerHTML = `<h1>Models</h1><p class="error" id="model-error" role="alert"></p>
    <div class="scroll"><table id="models"><thead><tr><th>Model</th><th>Stage</th><th>Tier</th><th>Memory GiB</th><th>Loaded on</th><th>Actions</th></tr></thead><tbody>${rows}</tbody></table></div>`;
  const act = async (model, keepAlive) => {
    modelError = "";
    try {
      await api("/api/generate", { method: "POST", body: JSON.stringify({ model, prompt: "", keep_alive: keepAlive, stream: false }) });
    } catch (e) { modelError = `${model}: ${e.message}`; }
    await models();
  };
  if (modelError) document.getElementById("model-error").textContent = modelError;
  view().querySelectorAll("[data-load]").forEach((b) => { b.onclick = () => act(b.dataset.load, "10m"); });
  view().querySelectorAll("[data-keep]").forEach((b) => { b.onclick = () => act(b.dataset.keep, -1); });
  view().querySelectorAll("[data-unload]").forEach((b) => { b.onclick = () => act(b.dataset.unload, 0); });
}

// --- Requests ------------------------------------------------------------------------------
function traceTable(trace) {
  const rows = (trace || []).map((t) => `<tr><td>${esc(t.stage)}</td><td>${esc(t.model)}</td><td>${esc(t.node)}</td><td>${esc(t.device)}</td><td>${esc(t.backend)}</td><td>${esc(t.precision)}</td><td>${(t.queue_ms ?? 0).toFixed(2)}</td><td>${(t.compute_ms ?? 0).toFixed(2)}</td><td>${esc(t.retries ?? 0)}</td></tr>`).join("");
  return `<div class="scroll"><table class="trace"><thead><tr><th>Stage</th><th>Model</th><th>Node</th><th>Device</th><th>Backend</th><th>Precision</th><th>Queue ms</th><th>Compute ms</th><th>Retries</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}

async function requests() {
  const data = await api("/v1/console/requests");
  const f = {
    tier: document.getElementById("f-tier")?.value || "",
    node: document.getElementById("f-node")?.value || "",
    status: document.getElementById("f-status")?.value || "",
  };
  const shown = data.requests.filter((r) => (!f.tier || r.tier === f.tier)
    && (!f.node || r.trace.some((t) => t.node === f.node)) && (!f.status || (f.status === "ok") === r.ok));
  const rows = shown.map((r) => `<tr data-request="${esc(r.id)}" tabindex="0" class="${r.id === selectedRequest ? "selected" : ""}">
    <td>${esc(r.id)}</td><td>${new Date(r.started_unix_ms).toLocaleTimeString()}</td><td>${esc(r.route)}</td><td>${esc(r.model)}</td><td>${esc(r.tier) || "—"}</td>
    <td class="${r.ok ? "ok" : "bad"}">${r.ok ? "ok" : esc(r.error)}</td><td>${r.duration_ms.toFixed(0)}</td><td>${esc(r.completion_tokens)}</td>
    <td>${r.tokens_per_second == null ? "—" : r.tokens_per_second.toFixed(1)}</td></tr>`).join("");
  const selected = data.requests.find((r) => r.id === selectedRequest);
  const keep = document.activeElement && document.activeElement.id;
  view().innerHTML = `<h1>Requests</h1>
    <form class="inline" id="filters" aria-label="Filters">
      <label>Tier <input id="f-tier" value="${esc(f.tier)}" size="8"></label>
      <label>Node <input id="f-node" value="${esc(f.node)}" size="10"></label>
      <label>Status <select id="f-status"><option value="">any</option><option value="ok" ${f.status === "ok" ? "selected" : ""}>ok</option><option value="error" ${f.status === "error" ? "selected" : ""}>error</option></select></label>
    </form>
    <div class="scroll"><table id="requests"><thead><tr><th>Id</th><th>Started</th><th>Route</th><th>Model</th><th>Tier</th><th>Status</th><th>ms</th><th>Tokens</th><th>tok/s</th></tr></thead><tbody>${rows}</tbody></table></div>
    <div id="request-detail">${selected ? `<h2>Request ${esc(selected.id)}: ${esc(selected.route)} → ${esc(selected.model)} (tier ${esc(selected.tier) || "—"})</h2>${traceTable(selected.trace)}` : '<p class="muted">Select a request to see its path through classify → embed → generate.</p>'}</div>`;
  if (keep) { const el = document.getElementById(keep); if (el) { el.focus(); if (el.setSelectionRange && el.value) el.setSelectionRange(el.value.length, el.value.length); } }
  ["f-tier", "f-node", "f-status"].forEach((id) => { document.getElementById(id).oninput = () => requests(); });
  view().querySelectorAll("[data-request]").forEach((tr) => {
    const open = () => { selectedRequest = Number(tr.dataset.request); requests(); };
    tr.onclick = open;
    tr.onkeydown = (e) => { if (e.key === "Enter") open(); };
  });
}

// --- Explain -------------------------------------------------------------------------------
function explainView() {
  view().innerHTML = `<h1>Explain</h1>
    <form id="explain-form"><label for="explain-prompt">Prompt</label><textarea id="explain-prompt" required></textarea>
    <div class="toolbar"><button type="submit">Explain</button></div></form><div id="explain-out"></div>`;
  document.getElementById("explain-form").onsubmit = async (e) => {
    e.preventDefault();
    const out = document.getElementById("explain-out");
    try {
      const r = await api("/v1/pipeline", { method: "POST", body: JSON.stringify({ prompt: document.getElementById("explain-prompt").value, explain: true }) });
      out.innerHTML = r.explanation.map((s) => `<h2>${esc(s.stage)}: ${esc(s.model)}</h2><div class="scroll"><table class="candidates"><thead><tr><th>#</th><th>Node</th><th>Device</th><th>Backend</th><th>Score</th><th>Why</th></tr></thead><tbody>${s.candidates.map((c, i) => `<tr><td>${i + 1}</td><td>${esc(c.node)}</td><td>${esc(c.device)}</td><td>${esc(c.backend)}</td><td>${c.eligible ? c.score.toFixed(2) : "—"}</td><td class="${c.eligible ? "" : "bad"}">${esc(c.eligible ? c.score_detail : c.filtered_reason)}</td></tr>`).join("")}</tbody></table></div>`).join("");
    } catch (err) { out.innerHTML = `<p class="error">${esc(err.message)}</p>`; }
  };
}

// --- Chat ----------------------------------------------------------------------------------
async function chatView() {
  const data = await api("/v1/models");
  const gen = data.data.filter((m) => (m.switchyard || {}).stage === "generate").map((m) => m.id);
  view().innerHTML = `<h1>Chat</h1>
    <form id="chat-form">
      <div class="toolbar"><label>Model <select id="chat-model"><option value="auto">auto (router picks the tier)</option>${gen.map((m) => `<option>${esc(m)}</option>`).join("")}</select></label>
      <label><input type="checkbox" id="chat-retrieval"> retrieval (your documents as context)</label>
      <label>Max tokens <input id="chat-max" type="number" min="1" max="4096" value="64" size="5"></label></div>
      <label for="chat-prompt">Message</label><textarea id="chat-prompt" required></textarea>
      <div class="toolbar"><button type="submit">Send</button></div>
    </form>
    <div class="answer" id="chat-answer" aria-live="polite"></div><div id="chat-trace"></div>`;
  document.getElementById("chat-form").onsubmit = async (e) => {
    e.preventDefault();
    const answer = document.getElementById("chat-answer");
    const traceOut = document.getElementById("chat-trace");
    answer.textContent = "";
    delete traceOut.dataset.model;
    traceOut.innerHTML = '<p class="muted">routing…</p>';
    const body = {
      model: document.getElementById("chat-model").value, stream: true, max_tokens: Number(document.getElementById("chat-max").value),
      messages: [{ role: "user", content: document.getElementById("chat-prompt").value }],
    };
    if (document.getElementById("chat-retrieval").checked) body.retrieval = true;
    try {
      const resp = await api("/v1/chat/completions", { method: "POST", body: JSON.stringify(body), raw: true });
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      let last = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const event = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const line = event.split("\n").find((l) => l.startsWith("data: "));
          if (!line || line === "data: [DONE]") continue;
          const chunk = JSON.parse(line.slice(6));
          if (chunk.error) throw new ApiError(500, chunk.error.message);
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) answer.textContent += delta.content;
          if (chunk.model && !traceOut.dataset.model) {
            traceOut.dataset.model = chunk.model;
            traceOut.innerHTML = `<p class="muted">answering: ${esc(chunk.model)} (streaming; the stages' trace follows the last token)</p>`;
          }
          if (chunk.switchyard) last = chunk.switchyard;
        }
      }
      const sources = last && last.sources ? `<h2>Sources</h2><ul>${last.sources.map((s) => `<li>${esc(s.source)} (document ${esc(s.document_id)}, chunk ${esc(s.chunk)}, score ${s.score.toFixed(3)})</li>`).join("")}</ul>${last.retrieval ? `<p class="muted">${esc(last.retrieval)}</p>` : ""}` : "";
      traceOut.innerHTML = last ? `<h2>Trace</h2>${traceTable(last.trace)}${sources}` : "";
    } catch (err) { traceOut.innerHTML = `<p class="error">${esc(err.message)}</p>`; }
  };
}

// --- Documents -----------------------------------------------------------------------------
async function documents() {
  const data = await api("/v1/documents");
  const rows = data.data.map((d) => `<tr data-document="${esc(d.id)}"><td>${esc(d.id)}</td><td>${esc(d.collection)}</td><td>${esc(d.source)}</td><td>${esc(d.chunks)}</td><td>${esc(d.tokens)}</td><td><button class="secondary" data-delete="${esc(d.id)}">Delete</button></td></tr>`).join("");
  view().innerHTML = `<h1>Documents</h1><p class="error" id="doc-error" role="alert"></p>
    <form class="inline" id="doc-add"><label>Add files <input type="file" id="doc-files" multiple></label>
      <label>Collection <input id="doc-collection" placeholder="default" size="12"></label><button type="submit">Upload</button></form>
    <form class="inline" id="doc-search"><label>Search <input id="doc-query" size="40" required></label><button type="submit">Search</button></form>
    <div id="doc-results"></div>
    <div class="scroll"><table id="documents"><thead><tr><th>Id</th><th>Collection</th><th>Source</th><th>Chunks</th><th>Tokens</th><th></th></tr></thead><tbody>${rows}</tbody></table></div>`;
  const error = (e) => { document.getElementById("doc-error").textContent = e.message; };
  document.getElementById("doc-add").onsubmit = async (e) => {
    e.preventDefault();
    try {
      const files = Array.from(document.getElementById("doc-files").files);
      const docs = await Promise.all(files.map(async (f) => ({ text: await f.text(), source: f.name })));
      const body = { documents: docs };
      const collection = document.getElementById("doc-collection").value.trim();
      if (collection) body.collection = collection;
      await api("/v1/documents", { method: "POST", body: JSON.stringify(body) });
      await documents();
    } catch (err) { error(err); }
  };
  document.getElementById("doc-search").onsubmit = async (e) => {
    e.preventDefault();
    try {
      const r = await api("/v1/documents/search", { method: "POST", body: JSON.stringify({ query: document.getElementById("doc-query").value, k: 5 }) });
      document.getElementById("doc-results").innerHTML = `<h2>Results</h2><ol id="search-results">${r.data.map((c) => `<li><strong>${c.score.toFixed(3)}</strong> ${esc(c.source)} #${esc(c.chunk)}: ${esc(c.text.slice(0, 240))}</li>`).join("")}</ol>`;
    } catch (err) { error(err); }
  };
  view().querySelectorAll("[data-delete]").forEach((b) => {
    b.onclick = async () => {
      try { await api(`/v1/documents/${b.dataset.delete}`, { method: "DELETE" }); await documents(); } catch (err) { error(err); }
    };
  });
}

// --- Routing -------------------------------------------------------------------------------
const VIEWS = { cluster: () => poll(cluster), models: () => poll(models), requests: () => poll(requests), explain: () => { stopPolling(); explainView(); }, chat: () => { stopPolling(); chatView(); }, documents: () => { stopPolling(); documents(); } };

function route() {
  const name = (location.hash || "#cluster").slice(1);
  const go = VIEWS[name] || VIEWS.cluster;
  document.querySelectorAll("nav a").forEach((a) => a.setAttribute("aria-current", a.dataset.view === name ? "page" : "false"));
  document.getElementById("signout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  Promise.resolve(go()).catch((e) => { if (e.status !== 401) view().innerHTML = `<p class="error">${esc(e.message)}</p>`; });
}

document.getElementById("login").onsubmit = (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  document.getElementById("login").hidden = true;
  route();
};
document.getElementById("signout").onclick = () => { sessionStorage.removeItem(TOKEN_KEY); showLogin("Signed out."); };
window.addEventListener("hashchange", route);
route();
