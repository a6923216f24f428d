// novaml dashboards: plain JavaScript over the JSON API, charts with the vendored uPlot.
// Each page's body has data-page="…"; the matching function below renders it and is re-run on a
// timer (live refresh). Buttons that change something send the API token.
"use strict";

const REFRESH_MS = 5000;
const COLORS = ["#4aa3ff", "#3fb950", "#d29922", "#f85149", "#a371f7", "#39c5cf", "#ff7b72", "#8b949e"];

// --- token, requests, messages -------------------------------------------------------------

function token() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    localStorage.setItem("novaml-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem("novaml-token") || "";
}

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    const e = new Error((body && body.message) || r.status + " " + r.statusText);
    e.status = r.status;
    e.kind = body && body.kind;
    throw e;
  }
  return body;
}

// GET that answers null when the feature is off or has nothing yet (404).
async function maybe(url) {
  try {
    return await getJSON(url);
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

async function postJSON(url, body) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const r = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + token() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const out = await r.json().catch(() => null);
    if (r.status === 401 && attempt === 0) {
      const t = window.prompt("API token (printed by novaml demo):");
      if (!t) throw new Error("this action needs the API token");
      localStorage.setItem("novaml-token", t.trim());
      continue;
    }
    if (!r.ok) throw new Error((out && out.message) || r.status + " " + r.statusText);
    return out;
  }
  throw new Error("unauthorized");
}

function toast(msg, bad) {
  const t = document.getElementById("toast");
  if (!t) return;
  t.textContent = msg;
  t.className = bad ? "bad" : "";
  t.style.display = "block";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.style.display = "none"), 5000);
}

function banner(msg) {
  const b = document.getElementById("banner");
  if (!b) return;
  b.textContent = msg || "";
  b.style.display = msg ? "block" : "none";
}

// Runs an action from a button: disables it, reports the outcome, refreshes the page.
async function act(button, what, fn) {
  button.disabled = true;
  try {
    await fn();
    toast(what + ": done");
  } catch (e) {
    toast(what + ": " + e.message, true);
  } finally {
    button.disabled = false;
    refresh();
  }
}

// --- formatting --------------------------------------------------------------------------

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function num(v, d = 2) {
  if (v == null || !isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(d) + " G";
  if (a >= 1e6) return (v / 1e6).toFixed(d) + " M";
  if (a >= 1e4) return (v / 1e3).toFixed(d) + " k";
  return v.toFixed(d);
}
function pct(v, d = 1) {
  return v == null || !isFinite(v) ? "–" : (v * 100).toFixed(d) + " %";
}
function signedPct(v) {
  return v == null || !isFinite(v) ? "–" : (v >= 0 ? "+" : "") + (v * 100).toFixed(1) + " %";
}
function when(unixSeconds) {
  if (unixSeconds == null) return "–";
  return new Date(unixSeconds * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}
function dur(seconds) {
  if (seconds == null || !isFinite(seconds)) return "–";
  if (seconds < 120) return seconds.toFixed(0) + " s";
  if (seconds < 7200) return (seconds / 60).toFixed(0) + " min";
  if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
  return (seconds / 86400).toFixed(1) + " d";
}
function cfg(c) {
  return Object.entries(c || {}).map(([k, v]) => k + "=" + v).join(", ");
}

// --- tables and KPI tiles ----------------------------------------------------------------

// columns: [[title, row => html, "num"?]]
function table(el, columns, rows, empty) {
  if (!rows || rows.length === 0) {
    el.innerHTML = '<div class="empty">' + esc(empty || "nothing yet") + "</div>";
    return;
  }
  let h = "<table><thead><tr>";
  for (const [t, , cls] of columns) h += '<th class="' + (cls || "") + '">' + esc(t) + "</th>";
  h += "</tr></thead><tbody>";
  for (const r of rows) {
    h += "<tr>";
    for (const [, f, cls] of columns) h += '<td class="' + (cls || "") + '">' + f(r) + "</td>";
    h += "</tr>";
  }
  el.innerHTML = h + "</tbody></table>";
}

function kpis(el, items) {
  el.innerHTML = items
    .map(([label, value, cls]) => '<div class="kpi"><div class="v ' + (cls || "") + '">' + esc(value) + '</div><div class="l">' + esc(label) + "</div></div>")
    .join("");
}

// --- charts ------------------------------------------------------------------------------

// series: [{label, color, points (scatter), dash, fill}], data: [xs, ys...] (x in Unix seconds).
// bands: [[upperIndex, lowerIndex, fill]] (1-based series indices as in uPlot).
function chart(el, series, data, opts = {}) {
  if (el._u) {
    el._u.destroy();
    el._u = null;
  }
  const points = data.slice(1).reduce((n, ys) => n + ys.filter((y) => y != null && isFinite(y)).length, 0);
  el.dataset.points = String(points);
  if (!data[0] || data[0].length === 0 || points === 0) {
    el.innerHTML = '<div class="empty">' + esc(opts.empty || "no data yet") + "</div>";
    return;
  }
  el.innerHTML = "";
  const axis = { stroke: "#8a96a3", grid: { stroke: "#2a323c", width: 1 }, ticks: { stroke: "#2a323c" } };
  const u = new uPlot(
    {
      width: Math.max(300, el.clientWidth || 600),
      height: opts.height || 240,
      scales: { x: { time: opts.time !== false }, y: opts.yRange ? { range: opts.yRange } : {} },
      axes: [axis, Object.assign({}, axis, { size: 60, values: opts.yValues })],
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
      series: [{ label: opts.xLabel || "time" }].concat(
        series.map((s, i) => ({
          label: s.label,
          stroke: s.color || COLORS[i % COLORS.length],
          width: s.points ? 0 : s.width || 1.5,
          dash: s.dash,
          fill: s.fill,
          spanGaps: false,
          paths: s.points ? () => null : undefined,
          points: s.points ? { show: true, size: 7, fill: s.color || COLORS[i % COLORS.length] } : { show: false },
        }))
      ),
      bands: (opts.bands || []).map(([hi, lo, fill]) => ({ series: [hi, lo], fill })),
    },
    data,
    el
  );
  el._u = u;
}

// Aligns several [[x, y]] lists on one sorted x axis (uPlot wants one x array).
function align(lists) {
  const xs = Array.from(new Set(lists.flatMap((l) => l.map((p) => p[0])))).sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = lists.map((l) => {
    const y = new Array(xs.length).fill(null);
    for (const [x, v] of l) y[index.get(x)] = v;
    return y;
  });
  return [xs].concat(ys);
}

// --- pages -------------------------------------------------------------------------------

const pages = {};

pages.pipeline = async function () {
  const s = await getJSON("/api/status");
  const errors = s.sources.reduce((n, x) => n + x.errors_total, 0);
  const samples = s.sources.reduce((n, x) => n + x.samples_total, 0);
  const h = s.history || [];
  let rate = null;
  if (h.length >= 2) {
    const a = h[h.length - 2], b = h[h.length - 1];
    const total = (x) => Object.values(x.samples).reduce((n, v) => n + v, 0);
    rate = (total(b) - total(a)) / Math.max(1e-9, b.t - a.t);
  }
  kpis(document.getElementById("kpis"), [
    ["series in the store", num(s.series, 0)],
    ["points in the store", num(s.points, 1)],
    ["samples/s (last interval)", rate == null ? "–" : num(rate, 1)],
    ["samples written", num(samples, 1)],
    ["collection errors", num(errors, 0), errors ? "bad" : "ok"],
    ["buffer in use", pct(s.buffer_utilization)],
    ["uptime", dur(s.uptime_seconds)],
  ]);
  table(
    document.getElementById("sources"),
    [
      ["source", (r) => esc(r.name) + (r.simulated ? ' <span class="tag sim">simulated</span>' : "")],
      ["kind", (r) => esc(r.kind)],
      ["interval", (r) => dur(r.interval_seconds), "num"],
      ["samples", (r) => num(r.samples_total, 0), "num"],
      ["errors", (r) => '<span class="' + (r.errors_total ? "bad" : "") + '">' + num(r.errors_total, 0) + "</span>", "num"],
      ["last success", (r) => (r.last_success ? when(r.last_success) : "–")],
      ["lag", (r) => dur(r.lag_seconds), "num"],
    ],
    s.sources,
    "no sources"
  );
  // A sharded fleet (or a shared state): every shard's lease and detection lag, from the state
  // store, so a worker that is down shows here on every other worker's page.
  const shards = s.shards || [];
  document.getElementById("shards-panel").hidden = shards.length === 0;
  table(
    document.getElementById("shards"),
    [
      ["shard", (r) => esc(r.shard)],
      ["worker", (r) => esc(r.holder)],
      ["lease", (r) => (r.held ? '<span class="ok">held</span>' : '<span class="bad">no worker</span>')],
      ["last pass", (r) => when(r.heartbeat)],
      ["scored until", (r) => (r.scored_until ? when(r.scored_until) : "–")],
      ["lag", (r) => '<span class="' + (r.held && r.lag_seconds != null && r.lag_seconds < 300 ? "" : "bad") + '">' + dur(r.lag_seconds) + "</span>", "num"],
    ],
    shards,
    "no shards"
  );
  const names = s.sources.map((x) => x.name);
  const rates = names.map(() => []);
  const buffer = [], errs = [];
  for (let i = 1; i < h.length; i++) {
    const dt = Math.max(1e-9, h[i].t - h[i - 1].t);
    names.forEach((n, j) => rates[j].push([h[i].t, ((h[i].samples[n] || 0) - (h[i - 1].samples[n] || 0)) / dt]));
    buffer.push([h[i].t, h[i].buffer_utilization * 100]);
    errs.push([h[i].t, h[i].errors_total - h[i - 1].errors_total]);
  }
  chart(document.getElementById("rate-chart"), names.map((n) => ({ label: n })), align(rates), { empty: "collecting: the first interval is not over yet" });
  chart(
    document.getElementById("buffer-chart"),
    [{ label: "buffer in use, %" }, { label: "errors per interval", color: COLORS[3], points: true }],
    align([buffer, errs]),
    { empty: "collecting: the first interval is not over yet" }
  );
};

pages.models = async function () {
  const models = await maybe("/api/models");
  const preds = (await maybe("/api/predictions")) || [];
  if (models === null) {
    banner("This server has no model registry.");
    return;
  }
  const byName = new Map(preds.map((p) => [p.model, p]));
  const sel = pages.models.selected && models.some((m) => m.name === pages.models.selected) ? pages.models.selected : models.length ? models[0].name : null;
  pages.models.selected = sel;
  table(
    document.getElementById("models"),
    [
      ["model", (m) => '<a href="#" data-model="' + esc(m.name) + '">' + esc(m.name) + "</a>" + (m.name === sel ? " ◀" : "")],
      ["serving", (m) => (m.champion == null ? "–" : "v" + m.champion + " " + esc((m.versions.find((v) => v.champion) || {}).kind || ""))],
      ["holdout MAE", (m) => num((m.versions.find((v) => v.champion) || {}).mae, 3), "num"],
      ["relative MAE vs naive", (m) => num((m.versions.find((v) => v.champion) || {}).relative_mae, 3), "num"],
      ["interval coverage", (m) => pct((m.versions.find((v) => v.champion) || {}).coverage), "num"],
      ["versions", (m) => m.versions.length, "num"],
      ["SLO risk (next hour)", (m) => (byName.has(m.name) ? pct(byName.get(m.name).risk) + " of > " + num(byName.get(m.name).slo, 1) : "–"), "num"],
      ["guard", (m) => (byName.has(m.name) && byName.get(m.name).guarded != null ? '<span class="bad" title="the model\'s recent error is ' + num(byName.get(m.name).guarded, 2) + '× the last value\'s: serving the last value">last value (' + num(byName.get(m.name).guarded, 2) + "× naive)</span>" : "model")],
    ],
    models,
    "no model trained yet: the first training pass runs a minute after start"
  );
  for (const a of document.querySelectorAll("[data-model]")) {
    a.onclick = (e) => {
      e.preventDefault();
      pages.models.selected = a.dataset.model;
      refresh();
    };
  }
  document.getElementById("pred-name").textContent = sel || "";
  document.getElementById("ver-name").textContent = sel || "";
  const p = sel && byName.get(sel);
  if (p) {
    const hist = p.history.slice(-72); // the last 6 hours before the hour predicted
    const fut = p.timestamps.map((t, i) => [t, p.predicted[i]]);
    const lo = p.timestamps.map((t, i) => [t, p.lower[i]]);
    const hi = p.timestamps.map((t, i) => [t, p.upper[i]]);
    chart(
      document.getElementById("pred-chart"),
      [{ label: "actual" }, { label: "predicted (median)", color: COLORS[1] }, { label: "upper " + pct(p.level, 0), color: "#3fb95066", dash: [4, 4] }, { label: "lower", color: "#3fb95066", dash: [4, 4] }],
      align([hist, fut, hi, lo]),
      { bands: [[3, 4, "rgba(63,185,80,0.15)"]] }
    );
    document.getElementById("pred-note").textContent =
      "v" + p.version + " " + p.kind + ", made " + when(p.generated_at) + "; risk of exceeding " + num(p.slo, 1) + " within the horizon: " + pct(p.risk) +
      (p.guarded != null ? "; GUARD: the model's recent error is " + num(p.guarded, 2) + "× the last value's, so the last value is served" : "");
  } else {
    chart(document.getElementById("pred-chart"), [], [[]], { empty: "no prediction yet" });
  }
  if (!sel) {
    chart(document.getElementById("acc-chart"), [], [[]], { empty: "no model yet" });
    chart(document.getElementById("train-chart"), [], [[]], { empty: "no model yet" });
    return;
  }
  const m = await getJSON("/api/models/" + encodeURIComponent(sel));
  const vs = m.versions;
  chart(
    document.getElementById("acc-chart"),
    [{ label: "relative MAE", points: true }, { label: "naive = 1", color: COLORS[7], dash: [4, 4] }],
    [vs.map((v) => v.version), vs.map((v) => v.relative_mae), vs.map(() => 1)],
    { time: false, xLabel: "version" }
  );
  // An LSTM version, or an ensemble's (its history holds each of its networks' epochs in turn:
  // the first network's run is shown).
  const lstm = vs.filter((v) => (v.kind === "lstm" || v.kind === "ensemble") && v.history && v.history.length).pop();
  if (lstm) {
    let h = lstm.history;
    const reset = h.findIndex((e, i) => i > 0 && e.epoch <= h[i - 1].epoch);
    if (reset > 0) h = h.slice(0, reset);
    chart(
      document.getElementById("train-chart"),
      [{ label: "training loss" }, { label: "validation loss", color: COLORS[2] }],
      [h.map((e) => e.epoch), h.map((e) => e.train_loss), h.map((e) => e.val_loss)],
      { time: false, xLabel: "epoch" }
    );
  } else {
    chart(document.getElementById("train-chart"), [], [[]], { empty: "no LSTM version yet" });
  }
  table(
    document.getElementById("versions"),
    [
      ["version", (v) => "v" + v.version + (v.champion ? ' <span class="tag ok">champion</span>' : "")],
      ["kind", (v) => esc(v.kind)],
      ["created", (v) => when(v.created)],
      ["holdout MAE", (v) => num(v.mae, 3), "num"],
      ["rel. MAE", (v) => num(v.relative_mae, 3), "num"],
      ["coverage", (v) => pct(v.coverage), "num"],
      ["", (v) => (v.champion ? "" : '<button data-promote="' + v.version + '">promote</button> <button data-rollback="' + v.version + '">roll back to</button>')],
    ],
    vs.slice().reverse()
  );
  for (const b of document.querySelectorAll("[data-promote]"))
    b.onclick = () => act(b, "promote v" + b.dataset.promote, () => postJSON("/api/models/" + encodeURIComponent(sel) + "/promote", { version: Number(b.dataset.promote) }));
  for (const b of document.querySelectorAll("[data-rollback]"))
    b.onclick = () => act(b, "roll back to v" + b.dataset.rollback, () => postJSON("/api/models/" + encodeURIComponent(sel) + "/rollback", { version: Number(b.dataset.rollback) }));
  table(
    document.getElementById("log"),
    [
      ["when", (e) => when(e.at_ms / 1000)],
      ["action", (e) => esc(e.action)],
      ["version", (e) => "v" + e.version],
      ["why", (e) => esc(e.reason)],
    ],
    m.log.slice().reverse()
  );
};

pages.anomalies = async function () {
  const list = await maybe("/api/incidents?limit=500");
  if (list === null) {
    banner("Anomaly detection is not enabled on this server.");
    return;
  }
  const stats = await maybe("/api/incidents/stats");
  const labelled = list.filter((i) => i.label).length;
  kpis(document.getElementById("kpis"), [
    ["incidents (last 500)", num(list.length, 0)],
    ["critical", num(list.filter((i) => i.severity === "critical").length, 0), "bad"],
    ["high", num(list.filter((i) => i.severity === "high").length, 0)],
    ["open (not acknowledged)", num(list.filter((i) => !i.acknowledged).length, 0)],
    ["labelled by operators", num(labelled, 0)],
    ["precision from labels", stats && stats.precision != null ? pct(stats.precision) : "–"],
  ]);
  // The detector's severities (novaml_anomaly::incident::Severity), most severe first.
  const sev = ["critical", "high", "medium", "low"];
  // uPlot needs one x per row: incidents starting in the same second are spread by a millisecond
  // each, so none hides another.
  const seen = new Map();
  const x = (i) => {
    const t = i.start / 1000;
    const k = seen.get(t) || 0;
    seen.set(t, k + 1);
    return t + k / 1000;
  };
  const lists = sev.map((s) => list.filter((i) => i.severity === s).map((i) => [x(i), i.peak_score]));
  chart(
    document.getElementById("timeline"),
    sev.map((s, k) => ({ label: s, color: [COLORS[3], COLORS[6], COLORS[2], COLORS[0]][k], points: true })),
    align(lists),
    { empty: "no incident yet: detection runs every 30 s", yRange: [0, 1.05] }
  );
  table(
    document.getElementById("incidents"),
    [
      ["start", (i) => when(i.start / 1000)],
      ["series", (i) => esc(i.series)],
      ["type", (i) => esc(i.kind)],
      ["severity", (i) => '<span class="sev-' + esc(i.severity) + '">' + esc(i.severity) + "</span>"],
      ["score", (i) => num(i.peak_score, 3), "num"],
      [
        "top contributing metrics",
        (i) =>
          ((i.body && i.body.contributors) || [])
            .slice(0, 3)
            .map((c) => esc(c.metric) + " = " + num(c.value, 2) + " (usual " + num(c.baseline_mean, 2) + ", z " + num(c.z, 1) + ")")
            .join("<br>"),
      ],
      ["label", (i) => (i.label ? '<span class="tag ' + (i.label === "tp" ? "ok" : "bad") + '">' + (i.label === "tp" ? "true positive" : "false positive") + "</span>" : "–")],
      [
        "feedback",
        (i) =>
          '<button data-fb="tp" data-id="' + i.id + '">true positive</button> <button data-fb="fp" data-id="' + i.id + '">false positive</button>' +
          (i.acknowledged ? ' <span class="muted">acked</span>' : ' <button data-ack="' + i.id + '">ack</button>'),
      ],
    ],
    list.slice(0, 30),
    "no incident yet (the 30 newest are listed)"
  );
  for (const b of document.querySelectorAll("[data-fb]"))
    b.onclick = () => act(b, "incident " + b.dataset.id + " labelled " + b.dataset.fb, () => postJSON("/api/incidents/" + b.dataset.id + "/feedback", { label: b.dataset.fb }));
  for (const b of document.querySelectorAll("[data-ack]"))
    b.onclick = () => act(b, "incident " + b.dataset.ack + " acknowledged", () => postJSON("/api/incidents/" + b.dataset.ack + "/ack"));
};

pages.optimizer = async function () {
  const o = await maybe("/api/tuning");
  if (o === null) {
    banner("Tuning is not enabled on this server.");
    return;
  }
  const done = o.runs.filter((r) => r.status === "done");
  const last = done[0];
  kpis(document.getElementById("kpis"), [
    ["scenario", o.scenario],
    ["state", o.busy ? "running: " + o.busy : "idle"],
    ["queued", String(o.queued.length)],
    ["latest improvement over default", last ? signedPct(last.improvement) : "–", last && last.improvement > 0 ? "ok" : ""],
    ["share of the grid optimum", last ? pct(last.share_of_optimum) : "–"],
    ["changes applied", String(o.changes.filter((c) => c.action === "apply").length)],
  ]);
  if (o.last_error) banner(o.last_error);
  const shown = o.runs.find((r) => r.status === "running") || last || o.runs[0];
  document.getElementById("run-id").textContent = shown ? String(shown.id) : "";
  if (shown) {
    const run = await getJSON("/api/tuning/runs/" + shown.id);
    const ts = run.trials.filter((t) => t.objective != null);
    let best = -Infinity;
    const bestSoFar = run.trials.map((t) => {
      if (t.objective != null && t.feasible) best = Math.max(best, t.objective);
      return isFinite(best) ? best / 1e6 : null;
    });
    chart(
      document.getElementById("trials-chart"),
      [{ label: "goodput, Mbit/s", points: true }, { label: "best so far", color: COLORS[1] }],
      [run.trials.map((t) => t.number), run.trials.map((t) => (t.objective == null ? null : t.objective / 1e6)), bestSoFar],
      { time: false, xLabel: "trial", empty: ts.length ? "" : "the first trial is running" }
    );
    const b = run.best;
    document.getElementById("config").innerHTML =
      "<table><tr><th>run " + run.id + " best</th><td>" + esc(b ? cfg(b.config) : "–") + "</td></tr>" +
      "<tr><th>in effect</th><td>" + esc(cfg(o.in_effect)) + "</td></tr>" +
      "<tr><th>default</th><td>" + esc(cfg(o.default)) + "</td></tr>" +
      "<tr><th>grid optimum</th><td>" + esc(o.optimum ? cfg(o.optimum.config) + " (" + num(o.optimum.objective / 1e6, 0) + " Mbit/s)" : "–") + "</td></tr>" +
      "<tr><th>improvement (95 % CI)</th><td>" + signedPct(run.improvement) + (run.improvement_ci95 ? " (" + signedPct(run.improvement_ci95[0]) + " … " + signedPct(run.improvement_ci95[1]) + ")" : "") + "</td></tr></table>";
  } else {
    chart(document.getElementById("trials-chart"), [], [[]], { empty: "no run yet: the first one starts shortly after start" });
  }
  table(
    document.getElementById("runs"),
    [
      ["run", (r) => String(r.id)],
      ["tuner", (r) => esc(r.request.tuner)],
      ["status", (r) => esc(r.status) + (r.error ? ' <span class="bad">' + esc(r.error) + "</span>" : "")],
      ["trials", (r) => r.trial_count + " / " + r.request.budget, "num"],
      ["best goodput", (r) => (r.best && r.best.objective ? num(r.best.objective / 1e6, 0) + " Mbit/s" : "–"), "num"],
      ["improvement (95 % CI)", (r) => signedPct(r.improvement) + (r.improvement_ci95 ? " (" + signedPct(r.improvement_ci95[0]) + " … " + signedPct(r.improvement_ci95[1]) + ")" : ""), "num"],
      ["share of optimum", (r) => pct(r.share_of_optimum), "num"],
      ["finished", (r) => when(r.finished_at)],
      ["", (r) => (r.status === "done" && r.best ? '<button data-apply="' + r.id + '">apply (guarded)</button>' : "")],
    ],
    o.runs,
    "no run yet"
  );
  for (const b of document.querySelectorAll("[data-apply]"))
    b.onclick = () => act(b, "apply run " + b.dataset.apply + " (queued: canary, then a sequential test)", () => postJSON("/api/tuning/runs/" + b.dataset.apply + "/apply"));
  table(
    document.getElementById("changes"),
    [
      ["when", (c) => when(c.at)],
      ["action", (c) => '<span class="tag ' + (c.action === "apply" ? "ok" : c.action === "refuse" ? "" : "bad") + '">' + esc(c.action) + "</span>"],
      ["to", (c) => esc(cfg(c.to))],
      ["in effect after", (c) => esc(cfg(c.in_effect))],
      ["why", (c) => esc(c.reason)],
    ],
    o.changes.slice().reverse(),
    "no change yet"
  );
};

pages.capacity = async function () {
  let plan = null;
  try {
    plan = await getJSON("/api/capacity");
  } catch (e) {
    if (e.status !== 404) throw e;
    if (/not enabled/.test(e.message)) {
      banner("Capacity planning is not enabled on this server (novaml serve --plan SELECTOR).");
      return;
    }
  }
  if (plan === null) {
    kpis(document.getElementById("kpis"), [["plan", "computing…"]]);
    chart(document.getElementById("cluster-chart"), [], [[]], { empty: "the first plan is being computed" });
    return;
  }
  const c = plan.cluster;
  const pol = plan.policy;
  kpis(document.getElementById("kpis"), [
    ["hosts planned", String(plan.hosts.length)],
    ["cluster CPU now", c ? num(c.plan.current, 1) + " %" : "–"],
    ["P90 peak in 30 days", c ? num(c.plan.peak_p90, 1) + " %" : "–"],
    ["runway to warning (P90)", c ? dur(c.plan.warning_runway.p90) || "beyond 30 d" : "–"],
    ["hosts to add", c ? String(c.plan.hosts_to_add) : "–", c && c.plan.hosts_to_add ? "bad" : "ok"],
    ["monthly cost of them", c ? num(c.monthly_cost, 0) : "–"],
    ["planned at", when(plan.generated_at)],
  ]);
  const fc = (f) => ({
    t: f.p50.map((_, i) => f.start + i * f.step),
    f,
  });
  const draw = async (el, f, selector, title) => {
    const { t } = fc(f);
    let hist = [];
    if (selector) {
      const s = await getJSON("/api/series/query?match=" + encodeURIComponent(selector) + "&from=-604800&step=3600");
      if (s.length) {
        // Mean over the matched series per time (the cluster mean), or the one series.
        const acc = new Map();
        for (const x of s) for (const [ts, v] of x.points) { const a = acc.get(ts) || [0, 0]; a[0] += v; a[1]++; acc.set(ts, a); }
        hist = Array.from(acc.entries()).sort((a, b) => a[0] - b[0]).map(([ts, [sum, n]]) => [ts, sum / n]);
      }
    }
    const p50 = t.map((x, i) => [x, f.p50[i]]), p10 = t.map((x, i) => [x, f.p10[i]]), p90 = t.map((x, i) => [x, f.p90[i]]);
    const all = hist.map((p) => p[0]).concat(t);
    const warn = all.map((x) => [x, pol.warning]), crit = all.map((x) => [x, pol.critical]);
    chart(
      el,
      [
        { label: title + " history" },
        { label: "P50", color: COLORS[1] },
        { label: "P90", color: "#3fb95066", dash: [4, 4] },
        { label: "P10", color: "#3fb95066", dash: [4, 4] },
        { label: "warning " + pol.warning + " %", color: COLORS[2], dash: [6, 3] },
        { label: "critical " + pol.critical + " %", color: COLORS[3], dash: [6, 3] },
      ],
      align([hist, p50, p90, p10, warn, crit]),
      { bands: [[3, 4, "rgba(63,185,80,0.15)"]], height: 260 }
    );
  };
  if (c) await draw(document.getElementById("cluster-chart"), c.forecast, "host_cpu_usage_percent", "cluster");
  const rw = (r) => (r.p90 == null && r.p50 == null ? "beyond 30 d" : dur(r.p90) + " / " + dur(r.p50) + " / " + dur(r.p10));
  const rows = plan.hosts.map((h) => ({ name: h.host, plan: h.plan, model: h.model })).concat(c ? [{ name: "cluster", plan: c.plan, model: c.model }] : []);
  table(
    document.getElementById("runway"),
    [
      ["scope", (r) => esc(r.name)],
      ["model", (r) => esc(typeof r.model === "string" ? r.model : (r.model && (r.model.name || r.model.model)) || "")],
      ["now", (r) => num(r.plan.current, 1) + " %", "num"],
      ["P90 peak", (r) => num(r.plan.peak_p90, 1) + " %", "num"],
      ["runway to warning P90 / P50 / P10", (r) => rw(r.plan.warning_runway), "num"],
      ["runway to critical P90 / P50 / P10", (r) => rw(r.plan.critical_runway), "num"],
      ["hosts to add", (r) => String(r.plan.hosts_to_add), "num"],
    ],
    rows
  );
  const grid = document.getElementById("host-charts");
  if (grid.children.length !== plan.hosts.length) {
    grid.innerHTML = plan.hosts.map((h, i) => '<div class="panel"><h2>' + esc(h.host) + '</h2><div class="chart" id="host-chart-' + i + '"></div></div>').join("");
  }
  for (let i = 0; i < plan.hosts.length; i++) {
    const h = plan.hosts[i];
    await draw(document.getElementById("host-chart-" + i), h.forecast, 'host_cpu_usage_percent{host="' + h.host + '"}', h.host);
  }
};

// --- refresh loop ------------------------------------------------------------------------

let running = false;
async function refresh() {
  const page = pages[document.body.dataset.page];
  if (!page || running) return;
  running = true;
  try {
    banner("");
    await page();
    document.body.dataset.loaded = String(Date.now());
  } catch (e) {
    banner("Could not load: " + e.message);
  } finally {
    running = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  token();
  const start = document.getElementById("start-run");
  if (start) start.onclick = () => act(start, "tuning run queued", () => postJSON("/api/tuning/runs", { tuner: "bo", budget: 12, repeats: 3 }));
  const rb = document.getElementById("rollback");
  if (rb) rb.onclick = () => act(rb, "roll back queued", () => postJSON("/api/tuning/rollback"));
  refresh();
  setInterval(refresh, REFRESH_MS);
});
