// elstream ui: the page. Data from /api (JSON), live ticks from /api/live
// (server-sent events). Plots: uPlot; the capability timeline and the span
// timeline are canvases drawn here.
"use strict";

const $ = (s) => document.querySelector(s);
const st = {
  sessions: [], id: null, paused: false, view: null, // view: {from, to} ns, null = whole run
  summary: null, totals: null, busy: false, plots: {}, lastEvents: -1, drag: null, cursorX: null,
};

const fmtNs = (ns) => ns >= 1e9 ? (ns / 1e9).toFixed(3) + " s" : ns >= 1e6 ? (ns / 1e6).toFixed(2) + " ms" : (ns / 1e3).toFixed(1) + " µs";
const fmtB = (b) => b >= 1 << 30 ? (b / (1 << 30)).toFixed(2) + " GiB" : b >= 1 << 20 ? (b / (1 << 20)).toFixed(1) + " MiB" : b >= 1024 ? (b / 1024).toFixed(1) + " KiB" : b + " B";
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

async function api(path, opts) {
  const r = await fetch(path, opts);
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()));
  return r.json();
}

// ---- sessions ----
function renderSessions() {
  const ul = $("#session-list");
  // Rebuild only on a change (a stable list can be clicked while it updates).
  const key = JSON.stringify(st.sessions.map((s) => [s.id, s.name, s.pid, s.live, s.ended])) + st.id;
  if (ul.dataset.key === key) return;
  ul.dataset.key = key;
  ul.innerHTML = "";
  for (const s of st.sessions) {
    const li = document.createElement("li");
    li.dataset.id = s.id;
    li.dataset.pid = s.pid ?? "";
    li.className = s.id === st.id ? "sel" : "";
    const state = s.live ? "live" : (s.ended || "ended");
    li.innerHTML = `${esc(s.name)} <span class="st">#${s.id}${s.pid ? " pid " + s.pid : ""} · ${esc(state)}</span>`;
    li.onclick = () => select(s.id);
    ul.appendChild(li);
  }
  for (const sel of [$("#cmp-a"), $("#cmp-b")]) {
    const v = sel.value;
    sel.innerHTML = st.sessions.map((s) => `<option value="${s.id}">#${s.id} ${esc(s.name)}</option>`).join("");
    if (v) sel.value = v;
  }
}

function select(id) {
  st.id = id; st.view = null; st.lastEvents = -1;
  renderSessions();
  refresh(true);
}

function onSessions(list) {
  st.sessions = list;
  if (st.id === null && list.length) st.id = list[list.length - 1].id;
  renderSessions();
  $("#live-state").textContent = st.paused ? "paused" : "live";
  if (!st.paused) refresh(false);
}

// ---- data ----
async function refresh(force) {
  const s = st.sessions.find((x) => x.id === st.id);
  if (!s || st.busy) return;
  if (!force && s.events === st.lastEvents) return;
  st.busy = true;
  try {
    st.lastEvents = s.events;
    const cols = Math.max(200, Math.min(2000, Math.floor($("#timeline").clientWidth)));
    let q = `cols=${cols}`;
    if (st.view) q += `&from=${Math.floor(st.view.from)}&to=${Math.ceil(st.view.to)}`;
    const [sum, tot] = await Promise.all([
      api(`/api/sessions/${s.id}/summary?${q}`),
      api(`/api/sessions/${s.id}/totals`),
    ]);
    st.summary = sum; st.totals = tot;
    draw(s);
    await Promise.all([refreshTail(), refreshThreads()]);
  } catch (e) {
    console.error(e);
  } finally {
    st.busy = false;
  }
}

async function refreshTail() {
  if (st.id === null) return;
  const f = encodeURIComponent($("#tail-filter").value);
  const rows = await api(`/api/sessions/${st.id}/tail?n=200&filter=${f}`);
  $("#tail").textContent = rows.map((e) =>
    `${(e.time / 1e9).toFixed(6).padStart(12)}  cap ${e.cap ?? "-"}  ${e.name}${e.text ? ": " + e.text : ""}${e.detail ? "  " + e.detail : ""}`).join("\n");
  $("#tail").scrollTop = 1e9;
}

// Labelled threads (ThreadLabel: GHC.Conc.labelThread), then the other live ones.
async function refreshThreads() {
  if (st.id === null) return;
  const t = await api(`/api/sessions/${st.id}/threads?n=500`);
  const c = $("#thread-count");
  c.textContent = `${t.live} live, ${t.labelled} labelled${t.rows.length < t.total ? ` (first ${t.rows.length} of ${t.total} shown)` : ""}`;
  c.dataset.live = t.live; c.dataset.labelled = t.labelled;
  $("#thread-table tbody").innerHTML = t.rows.map((r) =>
    `<tr data-id="${r.id}" data-state="${r.state}" data-label="${esc(r.label ?? "")}"><td>${r.id}</td><td>${esc(r.label ?? "")}</td><td>${r.state}</td></tr>`).join("");
}

// ---- drawing ----
function range() {
  const S = st.summary.summary;
  return { from: S.from, to: S.to };
}

function draw(s) {
  const S = st.summary.summary, T = st.totals;
  $("#title").textContent = `${s.name} (#${s.id})`;
  const info = T.info;
  $("#info").innerHTML = [
    `<span>source ${esc(s.source)}</span>`, `<span>pid ${info.pid ?? "?"}</span>`,
    `<span>RTS ${esc(info.rts ?? "?")}</span>`, `<span>args ${esc((info.args || []).join(" "))}</span>`,
    `<span>capabilities ${info.caps}</span>`, `<span>state ${s.live ? "live" : esc(s.ended || "ended")}</span>`,
  ].join("");
  const h = T.health;
  $("#health").innerHTML = [
    `<span>${fmtB(h.bytes)} read</span>`, `<span>${h.blocks} blocks</span>`, `<span>${h.events} events</span>`,
    `<span>stream time ${fmtNs(h.time)}</span>`,
    `<span class="${h.dropped_blocks ? "bad" : ""}">drops: ${h.drop_notices} notices, ${h.dropped_blocks} blocks, ${fmtB(h.dropped_bytes)}</span>`,
    h.truncated != null ? `<span class="bad">log cut: ${h.truncated} bytes of a last event dropped</span>` : "",
    h.error ? `<span class="bad">${esc(h.error)}</span>` : "",
    h.data_end ? `<span>data end</span>` : "",
  ].join("");
  $("#control-box").style.opacity = s.control ? 1 : 0.5;
  drawTimeline();
  drawGc();
  drawHeap();
  drawProf();
  drawThreads();
  drawSparks();
  drawSpans();
  const { from, to } = range();
  $("#range").textContent = `${fmtNs(from)} – ${fmtNs(to)}${S.coarse ? " (older part from coarse buckets)" : ""}`;
}

function markersIn() { return st.summary.summary.markers; }

function drawMarkers(ctx, x0, w, top, bottom, from, to) {
  ctx.save();
  ctx.strokeStyle = "rgba(170,0,170,0.8)";
  ctx.setLineDash([3, 3]);
  for (const m of markersIn()) {
    const x = x0 + ((m.time - from) / (to - from)) * w;
    ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
  }
  ctx.restore();
}

function fitCanvas(c) {
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth, h = c.clientHeight || c.height;
  if (c.width !== Math.floor(w * dpr)) { c.width = Math.floor(w * dpr); c.height = Math.floor(h * dpr); }
  const ctx = c.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w, h };
}

const LABEL = 60;
function drawTimeline() {
  const S = st.summary.summary;
  const c = $("#timeline");
  const caps = S.activity.length;
  c.style.height = (70 + caps * 26 + 16) + "px";
  const { ctx, w, h } = fitCanvas(c);
  ctx.clearRect(0, 0, w, h);
  const pw = w - LABEL, cols = S.cols, cw = pw / cols;
  // Activity (utilisation) graph: mean over capabilities of running (green) and GC (orange).
  const gh = 60;
  ctx.fillStyle = "#333"; ctx.fillText("activity", 4, 14);
  let filled = 0;
  for (let i = 0; i < cols; i++) {
    let run = 0, gc = 0;
    for (const a of S.activity) { run += a[i][0]; gc += a[i][1]; }
    run /= Math.max(1, caps); gc /= Math.max(1, caps);
    ctx.fillStyle = "#2a2"; ctx.fillRect(LABEL + i * cw, gh - run * gh, Math.ceil(cw), run * gh);
    ctx.fillStyle = "#e80"; ctx.fillRect(LABEL + i * cw, gh - (run + gc) * gh, Math.ceil(cw), gc * gh);
  }
  // One row per capability.
  const filledCaps = [];
  S.activity.forEach((a, cap) => {
    const y = 70 + cap * 26;
    ctx.fillStyle = "#333"; ctx.fillText("cap " + cap, 4, y + 15);
    ctx.fillStyle = "#f0f0f0"; ctx.fillRect(LABEL, y, pw, 22);
    let any = 0;
    for (let i = 0; i < cols; i++) {
      const [run, gc] = a[i];
      if (run > 0) { ctx.fillStyle = `rgba(34,160,34,${0.25 + 0.75 * run})`; ctx.fillRect(LABEL + i * cw, y, Math.ceil(cw), 22); any++; }
      if (gc > 0.02) { ctx.fillStyle = "#e80"; ctx.fillRect(LABEL + i * cw, y + 22 - 22 * Math.max(gc, 0.3), Math.ceil(cw), 22 * Math.max(gc, 0.3)); any++; }
    }
    filledCaps.push(any);
    if (any) filled++;
  });
  c.dataset.caps = caps;
  c.dataset.filledCaps = filled;
  c.dataset.filledColumns = filledCaps.join(",");
  drawMarkers(ctx, LABEL, pw, 0, h - 14, S.from, S.to);
  if (st.cursorX !== null) {
    ctx.strokeStyle = "#00f"; ctx.beginPath(); ctx.moveTo(st.cursorX, 0); ctx.lineTo(st.cursorX, h); ctx.stroke();
  }
  ctx.fillStyle = "#555";
  for (let k = 0; k <= 4; k++) {
    const t = S.from + (S.to - S.from) * k / 4;
    ctx.fillText(fmtNs(t), Math.min(w - 60, LABEL + pw * k / 4), h - 3);
  }
}

function timeAt(x) {
  const S = st.summary.summary, pw = $("#timeline").clientWidth - LABEL;
  return S.from + ((x - LABEL) / pw) * (S.to - S.from);
}

function setupTimeline() {
  const c = $("#timeline");
  c.addEventListener("wheel", (e) => {
    if (!st.summary) return;
    e.preventDefault();
    const { from, to } = range();
    const t = timeAt(e.offsetX), f = e.deltaY < 0 ? 0.7 : 1 / 0.7;
    const end = st.summary.end;
    let nf = Math.max(0, t - (t - from) * f), nt = Math.min(end, t + (to - t) * f);
    if (nt - nf < 10000) return;
    st.view = (nf <= 0 && nt >= end) ? null : { from: nf, to: nt };
    refresh(true);
  }, { passive: false });
  c.addEventListener("mousedown", (e) => { if (st.summary) st.drag = { x: e.offsetX, ...range() }; });
  window.addEventListener("mouseup", () => { st.drag = null; });
  c.addEventListener("mousemove", (e) => {
    if (!st.summary) return;
    st.cursorX = e.offsetX;
    $("#cursor").textContent = "cursor " + fmtNs(Math.max(0, timeAt(e.offsetX)));
    if (st.drag) {
      const pw = c.clientWidth - LABEL, span = st.drag.to - st.drag.from;
      let dt = -((e.offsetX - st.drag.x) / pw) * span;
      const nf = Math.max(0, st.drag.from + dt);
      st.view = { from: nf, to: nf + span };
      refresh(true);
    } else drawTimeline();
  });
  c.addEventListener("dblclick", () => { st.view = null; refresh(true); });
}

// uPlot helpers: one plot per element, data replaced on update; markers drawn as lines.
function markerPlugin() {
  return { hooks: { draw: [(u) => {
    const ctx = u.ctx; ctx.save();
    ctx.strokeStyle = "rgba(170,0,170,0.7)"; ctx.setLineDash([3, 3]);
    for (const m of markersIn()) {
      const x = u.valToPos(m.time / 1e9, "x", true);
      if (x >= u.bbox.left && x <= u.bbox.left + u.bbox.width) {
        ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      }
    }
    ctx.restore();
  }] } };
}

function plot(key, el, series, data, extra) {
  const width = Math.max(300, el.clientWidth || 500);
  let p = st.plots[key];
  if (!p || p.series.length !== series.length + 1) {
    if (p) p.destroy();
    el.innerHTML = "";
    const opts = Object.assign({
      width, height: 180, series: [{ label: "s" }, ...series], plugins: [markerPlugin()],
      scales: { x: { time: false } }, legend: { live: true },
    }, extra || {});
    p = st.plots[key] = new uPlot(opts, data, el);
  } else {
    p.setData(data);
    if (p.width !== width) p.setSize({ width, height: 180 });
  }
  return p;
}

function xRange() { const { from, to } = range(); return { min: from / 1e9, max: to / 1e9 }; }

function drawGc() {
  const S = st.summary.summary, T = st.totals;
  const g = T.gc_pauses;
  $("#gc-count").textContent = `${g.count} pauses (StartGC–EndGC per capability), total ${fmtNs(g.total)}, p50 ${fmtNs(g.p50)}, p99 ${fmtNs(g.p99)}, max ${fmtNs(g.max)}`;
  $("#gc-count").dataset.count = g.count;
  let xs = [], ys = [];
  if (S.pauses.length || !S.pause_cols.length) {
    for (const p of S.pauses) { xs.push(p.start / 1e9); ys.push((p.end - p.start) / 1e6); }
  } else {
    const w = (S.to - S.from) / S.cols;
    S.pause_cols.forEach((c, i) => { if (c[0]) { xs.push((S.from + i * w) / 1e9); ys.push(c[1] / c[0] / 1e6); } });
  }
  plot("gc", $("#gc-plot"), [{ label: "pause ms", stroke: "#e80", points: { show: true, size: 4 }, paths: () => null }], [xs, ys],
    { scales: { x: { time: false, range: () => [xRange().min, xRange().max] } } });
  const d = T.pause_distribution;
  plot("gcd", $("#gc-dist"), [{ label: "pauses", stroke: "#e80", fill: "rgba(238,136,0,0.3)", paths: uPlot.paths.bars({ size: [0.8] }) }],
    [d.map((b) => b[0] / 1e6), d.map((b) => b[1])], { scales: { x: { time: false, distr: 3 } } });
  $("#gen-table").innerHTML = "<tr><th>generation</th><th>GCs</th><th>pauses</th><th>total</th><th>p99</th><th>max</th></tr>" +
    T.generations.map(([gen, gs, t]) => `<tr><td>${gen}</td><td>${gs.gcs}</td><td>${t.count}</td><td>${fmtNs(t.total)}</td><td>${fmtNs(t.p99)}</td><td>${fmtNs(t.max)}</td></tr>`).join("");
}

function drawHeap() {
  const H = st.summary.summary.heap, MiB = 2 ** 20;
  const ser = (pts, d) => [pts.map((p) => p[0] / 1e9), pts.map((p) => p[1] / d)];
  const data = uPlot.join([ser(H.size, MiB), ser(H.live, MiB), ser(H.blocks, MiB), ser(H.allocated, MiB)]);
  $("#heap-plot").dataset.points = H.size.length + H.live.length + H.allocated.length;
  plot("heap", $("#heap-plot"), [
    { label: "size MiB", stroke: "#36c", spanGaps: true }, { label: "live MiB", stroke: "#2a2", spanGaps: true },
    { label: "blocks MiB", stroke: "#999", spanGaps: true }, { label: "allocated MiB (right)", stroke: "#c33", scale: "alloc", spanGaps: true },
  ], data, { axes: [{}, {}, { side: 1, scale: "alloc", grid: { show: false } }], scales: { x: { time: false, range: () => [xRange().min, xRange().max] }, alloc: {} } });
}

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
function drawProf() {
  const P = st.summary.summary.prof, bands = st.summary.bands;
  $("#prof-count").textContent = `${st.totals.heap_prof_samples} samples, ${bands.length} bands`;
  $("#prof-count").dataset.bands = bands.length;
  // The 9 largest bands (by peak) stacked, the rest as "other".
  const peak = new Map();
  for (const [, s] of P) for (const [b, v] of s.bands) peak.set(b, Math.max(peak.get(b) || 0, v));
  const top = [...peak.entries()].sort((a, b) => b[1] - a[1]).slice(0, 9).map((e) => e[0]);
  const names = top.map((b) => bands[b]).concat(peak.size > top.length ? ["other"] : []);
  const xs = P.map((p) => p[0] / 1e9);
  const layers = names.map(() => new Array(P.length).fill(0));
  P.forEach(([, s], i) => {
    for (const [b, v] of s.bands) {
      const k = top.indexOf(b);
      layers[k >= 0 ? k : names.length - 1][i] += v / 2 ** 20;
    }
  });
  // Stack: each series is the cumulative sum, drawn with fill down to the previous.
  const cum = layers.map((l) => l.slice());
  for (let k = 1; k < cum.length; k++) for (let i = 0; i < xs.length; i++) cum[k][i] += cum[k - 1][i];
  const series = names.map((n, k) => ({ label: n + " MiB", stroke: PALETTE[k % 10], fill: PALETTE[k % 10] + "99", value: (u, v, si, i) => i == null ? "" : layers[k][i]?.toFixed(2) }));
  const bandsOpt = names.slice(1).map((_, k) => ({ series: [k + 2, k + 1] }));
  const el = $("#prof-plot");
  el.dataset.bands = names.join("|");
  plot("prof:" + names.join("|"), el, series, [xs, ...cum].length > 1 ? [xs, ...cum] : [xs], { bands: bandsOpt, scales: { x: { time: false } } });
}

function drawThreads() {
  const T = st.summary.summary.threads;
  plot("thr", $("#thread-plot"), [
    { label: "running", stroke: "#2a2" }, { label: "runnable", stroke: "#36c" }, { label: "blocked", stroke: "#c33" },
  ], [T.map((p) => p[0] / 1e9), T.map((p) => p[1].running), T.map((p) => p[1].runnable), T.map((p) => p[1].blocked)],
    { scales: { x: { time: false, range: () => [xRange().min, xRange().max] } } });
}

function drawSparks() {
  const SP = st.summary.summary.sparks;
  const xs = [...new Set(SP.flatMap((c) => c.map((p) => p[0])))].sort((a, b) => a - b);
  const series = [], data = [xs.map((t) => t / 1e9)];
  SP.forEach((c, cap) => {
    if (!c.length) return;
    const m = new Map(c.map((p) => [p[0], p[1]]));
    let last = null;
    const pick = (f) => xs.map((t) => { if (m.has(t)) last = m.get(t); return last ? last[f] : null; });
    last = null; series.push({ label: `cap ${cap} created`, stroke: PALETTE[cap * 2 % 10] }); data.push(pick("created"));
    last = null; series.push({ label: `cap ${cap} converted`, stroke: PALETTE[(cap * 2 + 1) % 10] }); data.push(pick("converted"));
    last = null; series.push({ label: `cap ${cap} pool`, stroke: "#999", scale: "pool" }); data.push(pick("remaining"));
  });
  if (series.length) plot("sparks" + series.length, $("#spark-plot"), series, data, { scales: { x: { time: false }, pool: {} } });
  else $("#spark-plot").textContent = "no SparkCounters events (class p off, or no sparks)";
  $("#spark-table").innerHTML = "<tr><th>cap</th><th>created</th><th>converted</th><th>overflowed</th><th>dud</th><th>GC'd</th><th>fizzled</th><th>pool</th></tr>" +
    st.totals.caps.filter((c) => c.sparks).map((c) => { const s = c.sparks; return `<tr><td>${c.cap}</td><td>${s.created}</td><td>${s.converted}</td><td>${s.overflowed}</td><td>${s.dud}</td><td>${s.gcd}</td><td>${s.fizzled}</td><td>${s.remaining}</td></tr>`; }).join("");
}

function drawSpans() {
  const S = st.summary.summary, names = st.summary.span_names, T = st.totals;
  const c = $("#spans");
  c.style.height = (20 + Math.max(1, names.length) * 18) + "px";
  const { ctx, w, h } = fitCanvas(c);
  ctx.clearRect(0, 0, w, h);
  const pw = w - LABEL;
  names.forEach((n, i) => { ctx.fillStyle = "#333"; ctx.fillText(n.slice(0, 9), 4, 14 + i * 18); });
  for (const sp of S.spans) {
    const x0 = LABEL + ((sp.start - S.from) / (S.to - S.from)) * pw;
    const x1 = LABEL + ((sp.end - S.from) / (S.to - S.from)) * pw;
    ctx.fillStyle = PALETTE[sp.name % 10] + "cc";
    ctx.fillRect(x0, 3 + sp.name * 18, Math.max(1, x1 - x0), 14);
  }
  drawMarkers(ctx, LABEL, pw, 0, h, S.from, S.to);
  $("#markers-count").textContent = `${T.markers} markers (dashed lines), ${T.user_messages} user messages`;
  $("#markers-count").dataset.markers = T.markers;
  $("#span-table tbody").innerHTML = T.spans.map((s) =>
    `<tr data-name="${esc(s.name)}" data-count="${s.count}"><td>${esc(s.name)}</td><td>${s.count}</td><td>${fmtNs(s.total)}</td><td>${fmtNs(s.mean)}</td><td>${fmtNs(s.p99)}</td><td>${fmtNs(s.max)}</td></tr>`).join("");
}

// ---- control ----
async function control(command) {
  const out = $("#control-reply");
  if (st.id === null) return;
  try {
    const r = await fetch(`/api/sessions/${st.id}/control`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ command }),
    });
    const j = await r.json();
    out.className = j.status === "ok" ? "" : "err";
    out.textContent = `${command}: ${j.status}${j.text ? "\n" + j.text : ""}`;
    out.dataset.status = j.status;
    out.dataset.command = command;
  } catch (e) { out.className = "err"; out.textContent = String(e); }
}

async function snapshot() {
  const out = $("#control-reply");
  const r = await fetch(`/api/sessions/${st.id}/snapshot`, { method: "POST" });
  if (!r.ok) { out.className = "err"; out.textContent = "snapshot: " + (await r.text()); return; }
  const blob = await r.blob();
  const name = (r.headers.get("content-disposition") || "").match(/filename="([^"]+)"/)?.[1] || "snapshot.eventlog";
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob); a.download = name; document.body.appendChild(a); a.click(); a.remove();
  out.className = ""; out.textContent = `snapshot: ${name}, ${fmtB(blob.size)}`;
  out.dataset.status = "ok"; out.dataset.command = "snapshot"; out.dataset.bytes = blob.size;
}

// ---- uploads, recordings, compare ----
async function upload(file) {
  $("#upload-state").textContent = `uploading ${file.name}…`;
  try {
    const r = await fetch(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file, headers: { "content-type": "application/octet-stream" } });
    const j = await r.json();
    $("#upload-state").textContent = j.error ? `${file.name}: ${j.error}` : `${file.name}: ${fmtB(j.bytes)}`;
    $("#upload-state").dataset.id = j.id;
    if (j.id) { st.sessions = await api("/api/sessions"); select(j.id); }
  } catch (e) { $("#upload-state").textContent = String(e); }
}

async function recordings() {
  try {
    const names = await api("/api/recordings");
    $("#recordings").innerHTML = `<option value="">recordings (${names.length})…</option>` + names.map((n) => `<option>${esc(n)}</option>`).join("");
  } catch (e) { /* no recorder directory */ }
}

async function compare() {
  const a = $("#cmp-a").value, b = $("#cmp-b").value;
  if (!a || !b) return;
  const [ta, tb] = await Promise.all([api(`/api/sessions/${a}/totals`), api(`/api/sessions/${b}/totals`)]);
  const util = (t) => { const el = Math.max(1, t.end - t.start); return (100 * t.caps.reduce((s, c) => s + c.running_ns, 0) / el / Math.max(1, t.caps.length)).toFixed(1) + " %"; };
  const rows = [
    ["run", `#${a}`, `#${b}`],
    ["elapsed", fmtNs(ta.end), fmtNs(tb.end)],
    ["utilisation (mean over caps)", util(ta), util(tb)],
    ["GC pauses", ta.gc_pauses.count, tb.gc_pauses.count],
    ["GC pause total", fmtNs(ta.gc_pauses.total), fmtNs(tb.gc_pauses.total)],
    ["GC pause p50 / p99 / max", `${fmtNs(ta.gc_pauses.p50)} / ${fmtNs(ta.gc_pauses.p99)} / ${fmtNs(ta.gc_pauses.max)}`, `${fmtNs(tb.gc_pauses.p50)} / ${fmtNs(tb.gc_pauses.p99)} / ${fmtNs(tb.gc_pauses.max)}`],
    ["heap peak (size / live)", `${fmtB(ta.heap_peak.size)} / ${fmtB(ta.heap_peak.live)}`, `${fmtB(tb.heap_peak.size)} / ${fmtB(tb.heap_peak.live)}`],
  ];
  const names = [...new Set([...ta.spans, ...tb.spans].map((s) => s.name))];
  for (const n of names) {
    const f = (t) => { const s = t.spans.find((x) => x.name === n); return s ? `${s.count} × ${fmtNs(s.mean)} (p99 ${fmtNs(s.p99)})` : "–"; };
    rows.push([`span ${n}`, f(ta), f(tb)]);
  }
  $("#compare").innerHTML = rows.map((r, i) => `<tr data-row="${esc(r[0])}">${r.map((c) => i ? `<td>${esc(c)}</td>` : `<th>${esc(c)}</th>`).join("")}</tr>`).join("");
  $("#compare-box").hidden = false;
  $("#compare-box").scrollIntoView();
}

// ---- start ----
function start() {
  setupTimeline();
  $("#pause").onclick = () => {
    st.paused = !st.paused;
    $("#pause").textContent = st.paused ? "Resume" : "Pause";
    $("#live-state").textContent = st.paused ? "paused" : "live";
    if (!st.paused) refresh(true);
  };
  document.querySelectorAll("button[data-cmd]").forEach((b) => b.onclick = () => control(b.dataset.cmd));
  $("#classes-apply").onclick = () => {
    const letters = [...document.querySelectorAll("#classes input:checked")].map((i) => i.dataset.class).join("");
    control("classes =" + letters);
  };
  $("#sticky").onclick = () => { const t = $("#sticky-text").value.trim(); if (t) control("sticky " + t); };
  $("#snapshot").onclick = snapshot;
  $("#upload").onchange = (e) => { if (e.target.files[0]) upload(e.target.files[0]); };
  $("#recordings").onchange = async (e) => {
    if (!e.target.value) return;
    const j = await api("/api/recordings/open", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: e.target.value }) });
    st.sessions = await api("/api/sessions"); select(j.id);
  };
  $("#cmp-go").onclick = compare;
  $("#tail-filter").oninput = () => refreshTail();
  window.addEventListener("resize", () => refresh(true));
  recordings();
  const es = new EventSource("/api/live");
  es.addEventListener("sessions", (e) => onSessions(JSON.parse(e.data)));
  es.onerror = () => { $("#live-state").textContent = "disconnected (retrying)"; };
}
start();
