// maas dashboard: reads the coordinator's API (the session cookie carries
// the token) and refreshes the open page every 2 seconds.
"use strict";

const POLL_MS = 2000;
const COLORS = ["#2f6fdf", "#d64545", "#1f9d55", "#c98a10", "#8e44ad", "#16a2b8", "#5c6b8a"];
const STATES = ["running", "paused", "queued", "succeeded", "failed", "cancelled"];

let config = { auth: false, serve: false, node: "" };
let page = null; // {name, refresh(), stop()}
let timer = null;

// ---- helpers ----

async function api(path, opts = {}) {
  const headers = Object.assign({ "X-Maas-UI": "1" }, opts.headers || {});
  const resp = await fetch(path, Object.assign({}, opts, { headers, credentials: "same-origin" }));
  if (resp.status === 401) { // the session's token is gone: the login form
    location.href = "/ui/";
    throw new Error("not logged in");
  }
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text }; }
  if (!resp.ok) {
    const msg = (body && body.error) || resp.statusText;
    const err = new Error(`${path}: ${resp.status} ${msg}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function showError(msg) {
  const el = document.getElementById("error");
  el.textContent = msg || "";
  el.hidden = !msg;
  document.getElementById("live").classList.toggle("stale", !!msg);
}

const fmt = {
  num(v, d = 2) { return v === undefined || v === null || !isFinite(v) ? "–" : Number(v).toFixed(d); },
  int(v) { return v === undefined || v === null ? "–" : Number(v).toLocaleString("en-US"); },
  pct(v) { return v === undefined || v === null ? "–" : (100 * v).toFixed(2) + "%"; },
  dur(s) {
    if (s === undefined || s === null || !isFinite(s) || s < 0) return "–";
    s = Math.round(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  },
  age(t) { return t && !t.startsWith("0001") ? fmt.dur((Date.now() - Date.parse(t)) / 1000) : "–"; },
  time(t) { return t ? new Date(t).toLocaleString() : "–"; },
};

function stateBadge(s) { return h("span", { class: "state " + s, text: s }); }

function progress(done, total) {
  const p = total > 0 ? Math.min(1, done / total) : 0;
  return h("span", {}, h("span", { class: "bar" }, h("span", { style: `width:${(100 * p).toFixed(1)}%` })),
    `${fmt.int(done)} / ${fmt.int(total)}`);
}

function jobEpoch(j) {
  if (!j.steps_per_epoch) return "–";
  const e = Math.min(j.epochs, Math.floor(Math.max(0, j.step - 1) / j.steps_per_epoch) + 1);
  return `${j.step > 0 ? e : 0} / ${j.epochs}`;
}

// jobETA: the time left at the pace since the job started.
function jobETA(j) {
  if (j.state !== "running" || !j.started || j.step <= 0) return null;
  const elapsed = (Date.now() - Date.parse(j.started)) / 1000;
  return elapsed * (j.total_steps - j.step) / j.step;
}

// ---- router ----

function route() {
  const hash = location.hash || "#/jobs";
  const [path, query] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  if (page && page.stop) page.stop();
  clearTimeout(timer);
  const view = document.getElementById("view");
  view.replaceChildren();
  showError("");
  let name = parts[0] || "jobs";
  if (name === "job" && parts[1]) page = jobPage(view, decodeURIComponent(parts[1]).split(","), params);
  else if (name === "cluster") page = clusterPage(view);
  else if (name === "models") page = modelsPage(view);
  else { name = "jobs"; page = jobsPage(view, params); }
  document.querySelectorAll("header nav a").forEach(a => a.classList.toggle("active", a.dataset.page === name || (name === "job" && a.dataset.page === "jobs")));
  tick();
}

async function tick() {
  const p = page;
  clearTimeout(timer);
  if (!document.hidden) {
    try {
      await p.refresh();
      if (p === page) showError("");
    } catch (e) {
      if (p === page) showError(e.message);
    }
  }
  if (p === page) timer = setTimeout(tick, POLL_MS);
}

// ---- jobs ----

function jobsPage(view, params) {
  const filter = h("select", { id: "state-filter", onchange: () => { location.hash = "#/jobs" + (filter.value ? "?state=" + filter.value : ""); } },
    h("option", { value: "" }, "all states"), STATES.map(s => h("option", { value: s }, s)));
  filter.value = params.get("state") || "";
  const compare = h("button", { class: "plain", id: "compare", disabled: true, onclick: () => {
    const ids = [...view.querySelectorAll("input.pick:checked")].map(c => c.value);
    if (ids.length) location.hash = "#/job/" + ids.join(",");
  } }, "Compare selected");
  const tbody = h("tbody");
  const picked = new Set();
  view.append(h("h1", {}, "Jobs"),
    h("div", { class: "toolbar" }, h("label", { for: "state-filter" }, "State"), filter, compare, h("span", { class: "muted", id: "jobs-count" })),
    h("table", { id: "jobs-table" },
      h("thead", {}, h("tr", {}, ["", "job", "name", "state", "progress", "epoch", "samples/s", "ETA", "workers", "servers", "age"].map(
        (c, i) => h("th", { class: i >= 6 && i !== 7 ? "num" : "" }, c)))),
      tbody));
  return {
    async refresh() {
      const jobs = await api("/v1/jobs");
      const shown = jobs.filter(j => !filter.value || j.state === filter.value);
      document.getElementById("jobs-count").textContent = `${shown.length} of ${jobs.length} jobs`;
      tbody.replaceChildren(...shown.map(j => {
        const pick = h("input", { type: "checkbox", class: "pick", value: j.id, checked: picked.has(j.id), onchange: () => {
          pick.checked ? picked.add(j.id) : picked.delete(j.id);
          compare.disabled = picked.size === 0;
        } });
        return h("tr", { dataset: { job: j.id, state: j.state } },
          h("td", {}, pick),
          h("td", {}, h("a", { href: "#/job/" + j.id }, j.id)),
          h("td", {}, j.name),
          h("td", { class: "state-cell" }, stateBadge(j.state)),
          h("td", {}, progress(j.step, j.total_steps)),
          h("td", {}, jobEpoch(j)),
          h("td", { class: "num" }, j.samples_per_sec ? fmt.int(Math.round(j.samples_per_sec)) : "–"),
          h("td", {}, fmt.dur(jobETA(j))),
          h("td", { class: "num" }, j.workers),
          h("td", { class: "num" }, j.parameter_servers),
          h("td", { class: "num" }, fmt.age(j.submitted)));
      }));
      if (!shown.length) tbody.append(h("tr", {}, h("td", { colspan: 11, class: "muted" }, jobs.length ? "No job in this state." : "No jobs yet: submit one with `maas job submit -f JOB.yaml`.")));
    },
  };
}

// ---- a job, or several overlaid ----

// ema smooths ys as TensorBoard does (debiased exponential moving average).
function ema(ys, w) {
  if (!w) return ys;
  let last = 0, n = 0;
  return ys.map(y => {
    if (y === null || !isFinite(y)) return y;
    n++;
    last = last * w + (1 - w) * y;
    return last / (1 - Math.pow(w, n));
  });
}

// clippedMax is 1.15 × the 99th percentile of the y values of data.
function clippedMax(data) {
  const ys = [];
  for (let i = 1; i < data.length; i++) for (const v of data[i]) if (v !== null && isFinite(v)) ys.push(v);
  if (!ys.length) return 1;
  ys.sort((a, b) => a - b);
  return 1.15 * ys[Math.min(ys.length - 1, Math.floor(0.99 * ys.length))];
}

class Chart {
  constructor(el, title, yLabel, clip) {
    this.el = el; this.title = title; this.yLabel = yLabel; this.clip = clip; this.plot = null; this.sig = "";
  }
  // set draws the series: each {label, color, xs, ys, points (markers only), dash}.
  set(xLabel, series) {
    const sig = xLabel + "|" + series.map(s => s.label).join("|");
    const tables = series.map(s => [s.xs, s.ys]);
    const data = tables.length ? uPlot.join(tables) : [[]];
    this.el.dataset.series = series.length;
    this.el.dataset.points = series.reduce((n, s) => n + s.xs.length, 0);
    if (this.plot && sig === this.sig) {
      this.plot.setData(data);
      return;
    }
    if (this.plot) this.plot.destroy();
    this.sig = sig;
    const width = Math.max(320, this.el.clientWidth - 4);
    const clip = this.clip;
    this.plot = new uPlot({
      width, height: 240,
      // A clipped chart's y axis ends a little above the 99th percentile
      // of its values: one slow first step does not flatten the rest.
      scales: { x: { time: false }, y: clip ? { range: (u, min, max) => [Math.min(0, min), Math.max(clippedMax(u.data), Number.MIN_VALUE)] } : {} },
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      series: [{ label: xLabel, value: (u, v) => v === null ? "–" : fmt.num(v, xLabel === "step" ? 0 : 1) }].concat(series.map(s => ({
        label: s.label, stroke: s.color, width: s.points ? 0 : 1.5, dash: s.dash, spanGaps: true,
        paths: s.points ? () => null : undefined,
        points: s.points ? { show: true, size: s.hollow ? 9 : 7, width: 2, fill: s.hollow ? "#fff" : s.color, stroke: s.color } : { show: false },
        value: (u, v) => v === null ? "–" : fmt.num(v, 4),
      }))),
      axes: [{ label: xLabel }, { label: this.yLabel, size: 60 }],
    }, data, this.el);
  }
}

function jobPage(view, ids, params) {
  const xSel = h("select", { id: "x-axis" }, h("option", { value: "step" }, "step"), h("option", { value: "time" }, "time (s since start)"));
  const smooth = h("input", { type: "range", id: "smoothing", min: 0, max: 0.99, step: 0.01, value: params.get("smooth") || 0.6 });
  const smoothVal = h("span", { class: "muted" }, smooth.value);
  const addSel = h("select", { id: "overlay" }, h("option", { value: "" }, "overlay another job…"));
  addSel.onchange = () => { if (addSel.value) location.hash = "#/job/" + ids.concat(addSel.value).join(","); };
  const head = h("div", { class: "card", id: "job-head" });
  const charts = {};
  const grid = h("div", { class: "grid", id: "job-curves" });
  for (const [key, title, y, clip] of [["loss", "Loss", "loss"], ["acc", "Accuracy", "accuracy %"], ["tput", "Throughput", "samples/s", true],
    ["split", "Step time split (mean over the workers)", "ms", true], ["lr", "Learning rate", "lr"]]) {
    const el = h("div", { class: "chart-plot", id: "chart-" + key });
    grid.append(h("div", { class: "card chart" }, h("h3", {}, title), el));
    charts[key] = new Chart(el, title, y, clip);
  }
  const members = h("div", { class: "card", id: "memberships" });
  const spec = h("pre", { id: "job-spec" });
  const events = h("tbody");
  const single = ids.length === 1;
  view.append(h("h1", {}, single ? "Job " + ids[0] : "Jobs " + ids.join(", ")), head,
    h("div", { class: "toolbar" }, h("label", { for: "x-axis" }, "x axis"), xSel,
      h("label", { for: "smoothing" }, "smoothing"), smooth, smoothVal, addSel,
      ids.length > 1 ? h("a", { href: "#/job/" + ids[0] }, "only " + ids[0]) : null),
    grid,
    single ? h("h2", {}, "Membership") : null, single ? members : null,
    single ? h("div", { class: "grid" },
      h("div", {}, h("h2", {}, "Events"), h("div", { class: "card events" }, h("table", { id: "job-events" }, events))),
      h("div", {}, h("h2", {}, "Spec"), h("div", { class: "card" }, spec))) : null);

  let statuses = [], metrics = [], evs = [], lastSeq = 0, jobsList = [];
  const draw = () => {
    smoothVal.textContent = smooth.value;
    drawCurves(charts, ids, statuses, metrics, xSel.value, Number(smooth.value));
  };
  xSel.onchange = draw;
  smooth.oninput = draw;

  return {
    async refresh() {
      statuses = await Promise.all(ids.map(id => api("/v1/jobs/" + encodeURIComponent(id))));
      metrics = await Promise.all(ids.map(id => api(`/v1/jobs/${encodeURIComponent(id)}/metrics`)));
      head.replaceChildren(...statuses.map((j, i) => jobHead(j, ids.length > 1 ? COLORS[i % COLORS.length] : null)));
      draw();
      if (!jobsList.length || jobsList.length % 5 === 0) {
        jobsList = await api("/v1/jobs");
        const keep = addSel.value;
        addSel.replaceChildren(h("option", { value: "" }, "overlay another job…"),
          jobsList.filter(j => !ids.includes(j.id)).map(j => h("option", { value: j.id }, `${j.id} ${j.name} (${j.state})`)));
        addSel.value = keep;
      }
      if (!single) return;
      const j = statuses[0];
      if (!spec.textContent) spec.textContent = j.spec || "";
      const lp = await api(`/v1/jobs/${encodeURIComponent(ids[0])}/logs?since=${lastSeq}`);
      for (const e of lp.entries || []) {
        evs.push(e);
        lastSeq = Math.max(lastSeq, e.seq);
        const bad = /failed|lost|paused|dead|not finite|timed out/.test(e.message);
        events.append(h("tr", { class: bad ? "bad" : "" }, h("td", { class: "muted" }, new Date(e.time).toLocaleTimeString()),
          h("td", { class: "wrap", style: bad ? "color: var(--bad)" : "" }, e.message)));
      }
      events.parentElement.dataset.count = evs.length;
      drawMemberships(members, j, evs);
    },
  };
}

function jobHead(j, color) {
  const st = j.step_time;
  return h("div", { class: "kv", style: color ? `border-left: 4px solid ${color}; padding-left: 10px; margin-bottom: 8px` : "" },
    h("dt", {}, "job"), h("dd", {}, h("a", { href: "#/job/" + j.id }, j.id), " ", j.name, " ", stateBadge(j.state), j.reason ? h("span", { class: "muted" }, " " + j.reason) : null),
    h("dt", {}, "progress"), h("dd", {}, progress(j.step, j.total_steps), "  epoch ", jobEpoch(j), "  committed step ", fmt.int(j.committed_step)),
    h("dt", {}, "now"), h("dd", {}, `loss ${j.loss_not_finite ? "not finite" : fmt.num(j.loss, 4)}, accuracy ${fmt.pct(j.accuracy)} (this epoch), `,
      `${j.samples_per_sec ? fmt.int(Math.round(j.samples_per_sec)) : "–"} samples/s, ETA ${fmt.dur(jobETA(j))}`),
    st ? h("dt", {}, "step") : null,
    st ? h("dd", {}, `compute ${fmt.num(st.compute_ms)} ms, push ${fmt.num(st.push_ms)} ms, wait ${fmt.num(st.wait_ms)} ms`) : null,
    h("dt", {}, "cluster"), h("dd", {}, `${j.workers} workers, ${j.parameter_servers} parameter servers, ${fmt.int(j.num_params)} parameters, membership epoch ${j.epoch}`),
    h("dt", {}, "times"), h("dd", {}, `submitted ${fmt.time(j.submitted)}`, j.started ? `, started ${fmt.time(j.started)}` : "", j.finished ? `, finished ${fmt.time(j.finished)}` : ""),
    j.model ? h("dt", {}, "model") : null,
    j.model ? h("dd", {}, h("a", { href: "#/models" }, `${j.model.name} v${j.model.version}`),
      j.model.metrics && j.model.metrics.test_accuracy !== undefined ? `, test accuracy ${fmt.pct(j.model.metrics.test_accuracy)}` : "") : null);
}

function drawCurves(charts, ids, statuses, metrics, xAxis, w) {
  const series = { loss: [], acc: [], tput: [], split: [], lr: [] };
  ids.forEach((id, i) => {
    const m = metrics[i] || { points: [], epochs: [] };
    const pts = m.points || [], eps = m.epochs || [];
    const st = statuses[i] || {};
    const t0 = Date.parse(st.started || (pts[0] && pts[0].time) || 0);
    const x = p => xAxis === "time" ? (Date.parse(p.time) - t0) / 1000 : p.step;
    const xs = pts.map(x);
    const c = COLORS[i % COLORS.length];
    const tag = ids.length > 1 ? id + " " : "";
    const ev = eps.filter(e => e.eval);
    series.loss.push({ label: tag + "train", color: c, xs, ys: ema(pts.map(p => p.loss), w) },
      { label: tag + "train (epoch)", color: c, xs: eps.map(x), ys: eps.map(e => e.train_loss), points: true, hollow: true },
      { label: tag + "test", color: COLORS[(i + 1) % COLORS.length], xs: ev.map(x), ys: ev.map(e => e.eval.loss), points: true });
    series.acc.push({ label: tag + "train", color: c, xs, ys: ema(pts.map(p => 100 * p.accuracy), w) },
      { label: tag + "train (epoch)", color: c, xs: eps.map(x), ys: eps.map(e => 100 * e.train_accuracy), points: true, hollow: true },
      { label: tag + "test", color: COLORS[(i + 1) % COLORS.length], xs: ev.map(x), ys: ev.map(e => 100 * e.eval.accuracy), points: true });
    series.tput.push({ label: tag + "samples/s", color: c, xs, ys: ema(pts.map(p => p.samples_per_sec), w) });
    if (i === 0 || ids.length <= 3) {
      series.split.push({ label: tag + "compute", color: ids.length > 1 ? c : COLORS[0], xs, ys: ema(pts.map(p => p.compute_ms), w) },
        { label: tag + "push", color: ids.length > 1 ? c : COLORS[3], dash: ids.length > 1 ? [6, 3] : undefined, xs, ys: ema(pts.map(p => p.push_ms), w) },
        { label: tag + "wait", color: ids.length > 1 ? c : COLORS[1], dash: ids.length > 1 ? [2, 3] : undefined, xs, ys: ema(pts.map(p => p.wait_ms), w) });
    }
    series.lr.push({ label: tag + "lr", color: c, xs, ys: pts.map(p => p.lr) });
  });
  const xl = xAxis === "time" ? "seconds" : "step";
  for (const k of Object.keys(charts)) charts[k].set(xl, series[k]);
}

// drawMemberships draws the job's membership epochs along its steps, each
// with the event that began it.
function drawMemberships(el, j, evs) {
  const ms = j.memberships || [];
  el.dataset.count = ms.length;
  if (!ms.length) {
    el.replaceChildren(h("span", { class: "muted" }, "Not started yet."));
    return;
  }
  const total = Math.max(1, j.total_steps);
  const W = 1000, svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} 56`);
  svg.setAttribute("class", "timeline");
  svg.setAttribute("preserveAspectRatio", "none");
  const sv = (tag, a, text) => {
    const e = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(a)) e.setAttribute(k, v);
    if (text) e.textContent = text;
    svg.append(e);
  };
  sv("rect", { x: 0, y: 8, width: W, height: 24, fill: "#eef0f4" });
  ms.forEach((m, i) => {
    const end = i + 1 < ms.length ? ms[i + 1].from_step : Math.max(j.step, m.from_step);
    const x0 = W * m.from_step / total, x1 = W * end / total;
    sv("rect", { x: x0, y: 8, width: Math.max(2, x1 - x0), height: 24, fill: COLORS[i % COLORS.length], opacity: 0.75 });
    sv("line", { x1: x0, x2: x0, y1: 4, y2: 36, stroke: "#1d2330", "stroke-width": 1.5 });
    if (x1 - x0 > 60) sv("text", { x: x0 + 4, y: 25, fill: "#fff" }, `epoch ${m.epoch}: ${m.members.length}w ${m.servers.length}s`);
  });
  sv("text", { x: 0, y: 50 }, "step 0");
  sv("text", { x: W - 70, y: 50 }, `step ${fmt.int(total)}`);
  const why = m => {
    const e = evs.find(e => e.message.includes(`membership epoch ${m.epoch} `)) || (m.epoch === ms[0].epoch && evs.find(e => e.message.startsWith("started on")));
    return e ? e.message : "";
  };
  el.replaceChildren(svg, h("table", { id: "membership-table" },
    h("thead", {}, h("tr", {}, ["epoch", "from step", "workers", "parameter servers", "why"].map(c => h("th", {}, c)))),
    h("tbody", {}, ms.map(m => h("tr", {},
      h("td", {}, m.epoch), h("td", { class: "num" }, fmt.int(m.from_step) + (m.reset ? " (restored)" : "")),
      h("td", { class: "wrap" }, m.members.join(", ")), h("td", { class: "wrap" }, m.servers.join(", ")),
      h("td", { class: "wrap" }, why(m)))))));
}

// ---- cluster ----

function clusterPage(view) {
  const coords = h("tbody"), nats = h("div", { class: "card", id: "nats" }), members = h("tbody");
  view.append(h("h1", {}, "Cluster"),
    h("h2", {}, "Coordinators"),
    h("table", { id: "coordinators-table" }, h("thead", {}, h("tr", {}, ["id", "state", "term", "applied index", "API", "Raft", "voter", ""].map(
      c => h("th", {}, c)))), coords),
    h("h2", {}, "NATS"), nats,
    h("h2", {}, "Workers and parameter servers"),
    h("table", { id: "members-table" }, h("thead", {}, h("tr", {}, ["id", "kind", "host", "device", "threads", "state", "heartbeat", "job"].map(
      c => h("th", {}, c)))), members));
  return {
    async refresh() {
      const c = await api("/v1/cluster");
      coords.replaceChildren(...c.nodes.map(n => h("tr", { dataset: { node: n.id } },
        h("td", {}, n.id, n.leader ? h("b", { title: "leader" }, " ★") : null),
        h("td", {}, n.state || "–"), h("td", { class: "num" }, n.term || "–"), h("td", { class: "num" }, fmt.int(n.applied_index)),
        h("td", {}, n.http_addr), h("td", {}, n.raft_addr), h("td", {}, n.voter ? "yes" : "no"),
        h("td", { class: "wrap", style: "color: var(--bad)" }, n.error || ""))));
      const nv = c.nats;
      nats.replaceChildren(nv ? h("div", { class: "kv" },
        h("dt", {}, "this coordinator"), h("dd", {}, nv.connected ? `connected to ${nv.url} (${nv.server_name || "?"}, NATS ${nv.version || "?"}${nv.cluster ? ", cluster " + nv.cluster : ""}${nv.jetstream ? ", JetStream" : ""})` : "disconnected"),
        h("dt", {}, "known servers"), h("dd", {}, (nv.known || []).join(", ") || "–")) : h("span", { class: "muted" }, "–"));
      const all = c.workers.concat(c.parameter_servers);
      members.replaceChildren(...all.map(m => h("tr", { dataset: { member: m.id, kind: m.kind, state: m.state } },
        h("td", {}, m.id), h("td", {}, m.kind === "paramserver" ? "parameter server" : m.kind), h("td", {}, m.host),
        h("td", {}, m.device || "–"), h("td", { class: "num" }, m.threads || "–"), h("td", {}, stateBadge(m.state)),
        h("td", { class: "num" }, m.last_seen && !m.last_seen.startsWith("0001") ? fmt.num((Date.now() - Date.parse(m.last_seen)) / 1000, 1) + " s ago" : "–"),
        h("td", {}, m.job ? h("a", { href: "#/job/" + m.job }, m.job) : ""))));
      if (!all.length) members.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No member has registered.")));
    },
  };
}

// ---- models and "try it" ----

function modelsPage(view) {
  const tbody = h("tbody");
  const modelSel = h("select", { id: "try-model" });
  const tryCard = h("div", { class: "card", id: "try" });
  view.append(h("h1", {}, "Models"),
    h("table", { id: "models-table" }, h("thead", {}, h("tr", {}, ["model", "version", "job", "published", "test accuracy", "test loss", "served"].map(
      (c, i) => h("th", { class: i === 4 || i === 5 ? "num" : "" }, c)))), tbody),
    h("h2", {}, "Try it"), tryCard);
  const served = {}; // name → served version (the default), from the serving endpoint
  let tried = false;
  if (!config.serve) {
    tryCard.append(h("span", { class: "muted" }, "No serving endpoint is known to this coordinator (start it with --serve-url, as `maas local` does)."));
  } else {
    tryPanel(tryCard, modelSel);
  }
  return {
    async refresh() {
      const models = await api("/v1/models");
      const names = [...new Set(models.map(m => m.name))];
      if (config.serve) {
        await Promise.all(names.map(async n => {
          try {
            const md = await api(`/ui/serve/v2/models/${encodeURIComponent(n)}`);
            served[n] = { version: (md.versions || [])[0], meta: md };
          } catch (e) { served[n] = null; }
        }));
        const options = names.filter(n => served[n]);
        const keep = modelSel.value;
        if (options.join() !== [...modelSel.options].map(o => o.value).join()) {
          modelSel.replaceChildren(...options.map(n => h("option", { value: n }, `${n} (version ${served[n].version})`)));
          if (options.includes(keep)) modelSel.value = keep;
          modelSel.dispatchEvent(new Event("change"));
        }
        if (!tried && options.length) tried = true;
      }
      tbody.replaceChildren(...models.slice().reverse().map(m => {
        const s = served[m.name];
        const isServed = s && String(s.version) === String(m.version);
        const mt = m.metrics || {};
        return h("tr", { dataset: { model: m.name, version: m.version, served: isServed ? "yes" : "no" } },
          h("td", {}, m.name), h("td", { class: "num" }, m.version), h("td", {}, h("a", { href: "#/job/" + m.job }, m.job)),
          h("td", {}, fmt.time(m.created)),
          h("td", { class: "num" }, mt.test_accuracy !== undefined ? fmt.pct(mt.test_accuracy) : "–"),
          h("td", { class: "num" }, mt.test_loss !== undefined ? fmt.num(mt.test_loss, 4) : "–"),
          h("td", {}, isServed ? h("span", { class: "state idle" }, "served") : ""));
      }));
      if (!models.length) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No model published yet.")));
    },
  };
}

// tryPanel: draw a digit (or drop an image) and see the served model's
// answer, asked through the coordinator's /ui/serve/ (OIP V2).
function tryPanel(card, modelSel) {
  const canvas = h("canvas", { id: "try-canvas", width: 280, height: 280 });
  const result = h("div", { class: "probs", id: "try-result" }, h("span", { class: "muted" }, "Draw a digit in the black square, or drop an image on it."));
  const status = h("div", { class: "legend-note", id: "try-status" });
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  card.append(h("div", { class: "toolbar" }, h("label", { for: "try-model" }, "model"), modelSel,
    h("button", { class: "plain", id: "try-clear", onclick: () => { clear(); result.replaceChildren(); delete result.dataset.class; } }, "Clear"),
    h("button", { class: "act", id: "try-predict", onclick: () => predict() }, "Predict")),
    h("div", { class: "try" }, h("div", {}, canvas, status), result));
  let drawing = false, last = null;
  const pos = e => { const r = canvas.getBoundingClientRect(); return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; };
  canvas.addEventListener("pointerdown", e => { drawing = true; last = pos(e); canvas.setPointerCapture(e.pointerId); stroke(last, last); });
  canvas.addEventListener("pointermove", e => { if (!drawing) return; const p = pos(e); stroke(last, p); last = p; });
  const end = () => { if (drawing) { drawing = false; predict(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  function stroke(a, b) {
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 22; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  }
  canvas.addEventListener("dragover", e => { e.preventDefault(); canvas.classList.add("drop"); });
  canvas.addEventListener("dragleave", () => canvas.classList.remove("drop"));
  canvas.addEventListener("drop", e => {
    e.preventDefault();
    canvas.classList.remove("drop");
    const f = e.dataTransfer.files[0];
    if (!f || !f.type.startsWith("image/")) { status.textContent = "Drop an image file (PNG or JPEG)."; return; }
    const img = new Image();
    img.onload = () => {
      clear();
      const s = Math.min(canvas.width / img.width, canvas.height / img.height);
      ctx.drawImage(img, (canvas.width - img.width * s) / 2, (canvas.height - img.height * s) / 2, img.width * s, img.height * s);
      URL.revokeObjectURL(img.src);
      predict();
    };
    img.src = URL.createObjectURL(f);
  });

  async function predict() {
    const name = modelSel.value;
    if (!name) { status.textContent = "No served model yet: the models the cluster publishes are served as they appear."; return; }
    let md;
    try { md = await api(`/ui/serve/v2/models/${encodeURIComponent(name)}`); } catch (e) { status.textContent = e.message; return; }
    const shape = (md.inputs && md.inputs[0] && md.inputs[0].shape || []).slice(1).map(Number);
    const input = pixels(canvas, shape);
    if (!input) { status.textContent = `The model takes ${JSON.stringify(shape)} per sample, not an image.`; return; }
    if (input.empty) { status.textContent = "Draw a digit first."; return; }
    window.maasTry = { model: name, shape, data: input.data }; // what was sent, for tests and the console
    status.textContent = "asking " + name + "…";
    const t0 = performance.now();
    try {
      const resp = await api(`/ui/serve/v2/models/${encodeURIComponent(name)}/infer`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ inputs: [{ name: "input", datatype: "FP32", shape: [1].concat(shape), parameters: { raw_pixels: true }, data: input.data }],
          outputs: [{ name: "probabilities" }, { name: "class" }] }),
      });
      const out = Object.fromEntries(resp.outputs.map(o => [o.name, o.data]));
      const probs = out.probabilities, cls = out["class"][0];
      status.textContent = `${resp.model_name} version ${resp.model_version} answered in ${(performance.now() - t0).toFixed(0)} ms`;
      result.dataset.class = cls;
      result.dataset.probs = JSON.stringify(probs);
      result.replaceChildren(h("div", {}, h("span", { class: "muted" }, "class "), h("span", { class: "big", id: "try-class" }, cls)),
        ...probs.map((p, k) => h("div", { class: "prob" + (k === cls ? " top" : "") }, h("span", {}, k),
          h("div", {}, h("div", { class: "p", style: `width:${(100 * p).toFixed(1)}%` })), h("span", { class: "v" }, (100 * p).toFixed(1) + "%"))));
    } catch (e) {
      status.textContent = e.message;
    }
  }
}

// pixels turns the canvas into the model's input (C, H, W) in [0, 255].
// One channel (MNIST): the drawing's bounding box is scaled to fit 20×20
// and centred by its centre of mass in the H×W frame, as MNIST's digits
// were; three channels: the whole canvas, resized.
function pixels(canvas, shape) {
  let c, hh, ww;
  if (shape.length === 3 && (shape[0] === 1 || shape[0] === 3)) [c, hh, ww] = shape;
  else if (shape.length === 2) [c, hh, ww] = [1, shape[0], shape[1]];
  else return null;
  const src = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const out = document.createElement("canvas");
  out.width = ww; out.height = hh;
  const o = out.getContext("2d");
  o.fillStyle = "#000"; o.fillRect(0, 0, ww, hh);
  o.imageSmoothingEnabled = true; o.imageSmoothingQuality = "high";
  if (c === 1) {
    let x0 = canvas.width, y0 = canvas.height, x1 = -1, y1 = -1;
    for (let y = 0; y < canvas.height; y++) for (let x = 0; x < canvas.width; x++) {
      if (src[4 * (y * canvas.width + x)] > 20) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    }
    if (x1 < 0) return { empty: true };
    const bw = x1 - x0 + 1, bh = y1 - y0 + 1, box = Math.round(Math.min(ww, hh) * 20 / 28);
    const s = box / Math.max(bw, bh);
    const dw = bw * s, dh = bh * s;
    o.drawImage(canvas, x0, y0, bw, bh, (ww - dw) / 2, (hh - dh) / 2, dw, dh);
    // Shift by the centre of mass.
    let m = 0, mx = 0, my = 0;
    let d = o.getImageData(0, 0, ww, hh).data;
    for (let y = 0; y < hh; y++) for (let x = 0; x < ww; x++) { const v = d[4 * (y * ww + x)]; m += v; mx += v * x; my += v * y; }
    const sx = Math.round((ww - 1) / 2 - mx / m), sy = Math.round((hh - 1) / 2 - my / m);
    if (sx || sy) {
      const tmp = document.createElement("canvas");
      tmp.width = ww; tmp.height = hh;
      tmp.getContext("2d").drawImage(out, 0, 0);
      o.fillRect(0, 0, ww, hh);
      o.drawImage(tmp, sx, sy);
    }
    d = o.getImageData(0, 0, ww, hh).data;
    const data = new Array(hh * ww);
    for (let i = 0; i < hh * ww; i++) data[i] = d[4 * i];
    return { data };
  }
  o.drawImage(canvas, 0, 0, ww, hh);
  const d = o.getImageData(0, 0, ww, hh).data;
  const data = new Array(3 * hh * ww);
  for (let ch = 0; ch < 3; ch++) for (let i = 0; i < hh * ww; i++) data[ch * hh * ww + i] = d[4 * i + ch];
  return { data };
}

// ---- start ----

async function start() {
  try {
    config = await api("/ui/config");
  } catch (e) {
    showError(e.message);
  }
  document.getElementById("node").textContent = config.node ? "coordinator " + config.node : "";
  document.getElementById("logout").hidden = !config.auth;
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
  route();
}

start();
