// console.js - hopper's console: reads /api/* every second or two and
// shows it; actions are POSTs that carry the admin token in a header.
// Every text that comes from the run (ids, errors, payloads, names) is set
// with textContent, never parsed as HTML.
"use strict";

(function () {
  const STATE_MS = 1000;
  const SLOW_MS = 2000;
  const PAGE = 50;
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                  "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
  const $ = (id) => document.getElementById(id);

  let deadOffset = 0;
  let deadSource = "";
  let sourcesKnown = "";
  let configShown = "";
  let graphShown = "";
  let admin = false;

  // ---- small helpers ----

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }

  function num(v) {
    return v === null || v === undefined || v < 0 ? "–" : String(v);
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "–";
    const s = Math.floor(ms / 1000);
    if (s < 60) return (ms / 1000).toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function say(text, bad) {
    const m = $("message");
    m.textContent = text;
    m.className = bad ? "bad" : "";
  }

  function token() {
    return sessionStorage.getItem("hopper-token") || "";
  }

  // The token goes with reads too, for a run started with --private.
  function auth() {
    return token() ? { "X-Hopper-Token": token() } : {};
  }

  async function getJSON(path) {
    const r = await fetch(path, { cache: "no-store", headers: auth() });
    if (!r.ok) throw new Error(path + ": " + r.status);
    return r.json();
  }

  // An action: POST with the token in a header (never in the URL's
  // query, which names only what is acted on).
  async function act(path, params, done) {
    if (!token()) {
      say("Actions need the admin token: enter it above.", true);
      $("token").focus();
      return;
    }
    const q = new URLSearchParams(params).toString();
    try {
      const r = await fetch(path + "?" + q, {
        method: "POST",
        headers: { "X-Hopper-Token": token() },
        cache: "no-store",
      });
      const text = await r.text();
      let body = null;
      try { body = JSON.parse(text); } catch (e) { body = null; }
      if (!r.ok) {
        say((body && body.error) || text.trim() || ("refused: " + r.status), true);
        return;
      }
      say(done);
      refresh();
      loadDead();
    } catch (e) {
      say("hopper did not answer: " + e.message, true);
    }
  }

  // ---- the summary and the stages ----

  function showSummary(s) {
    $("sum-done").textContent = num(s.done);
    $("sum-dead").textContent = num(s.dead);
    $("sum-retried").textContent = num(s.retried);
    $("sum-depth").textContent = num(s.depth);
    $("sum-in-flight").textContent = num(s.in_flight);
    $("sum-rate").textContent = s.rate === null ? "–" : String(s.rate);
    $("sum-uptime").textContent =
      s.uptime_seconds === null ? "–" : duration(s.uptime_seconds * 1000);
    const b = $("ready");
    b.textContent = s.ready ? "ready" : ("not ready: " + (s.not_ready || ""));
    b.className = "badge " + (s.ready ? "ok" : "bad");
    admin = s.admin;
    $("token-state").textContent = !s.admin
      ? "actions are off (no --admin-token-file)"
      : token() ? "token set for this tab" : "";
  }

  function cell(row, text, cls) {
    const td = el("td", text, cls);
    row.appendChild(td);
    return td;
  }

  // The pause button says what a press does: pause, or resume.
  function pauseButton(b, st) {
    b.textContent = st.paused ? "Resume" : "Pause";
    b.dataset.action = st.paused ? "resume" : "pause";
    b.setAttribute("aria-label", (st.paused ? "Resume " : "Pause ") + st.name);
  }

  function stageRow(st) {
    const tr = el("tr");
    tr.dataset.stage = st.name;
    const th = el("th", st.name);
    th.scope = "row";
    tr.appendChild(th);
    cell(tr, num(st.depth), "num depth");
    cell(tr, num(st.in_flight), "num in-flight");
    cell(tr, num(st.busy), "num busy");
    cell(tr, num(st.idle), "num idle");
    cell(tr, st.slots ? String(st.max) : "–", "num max");
    cell(tr, st.rate === null ? "–" : String(st.rate), "num rate");
    cell(tr, num(st.done), "num done");
    cell(tr, num(st.dead), "num dead-count");
    cell(tr, st.paused ? "paused" : "running", st.paused ? "paused state" : "state");
    const td = cell(tr, "");
    if (st.slots) {
      const b = el("button");
      b.type = "button";
      b.className = "pause";
      b.disabled = !admin;
      pauseButton(b, st);
      b.addEventListener("click", () =>
        act("/api/stage/" + b.dataset.action, { stage: st.name },
            "Stage " + st.name +
            (b.dataset.action === "resume" ? " resumed." : " paused.")));
      td.appendChild(b);
      const f = el("form");
      f.className = "inline";
      f.style.display = "inline-flex";
      f.style.gap = ".3rem";
      f.style.marginLeft = ".4rem";
      const inp = el("input");
      inp.type = "number";
      inp.min = "1";
      inp.max = String(st.max_limit || st.slots);
      inp.value = String(st.max);
      inp.disabled = !admin;
      inp.setAttribute("aria-label", "most workers of " + st.name);
      const set = el("button", "Set");
      set.type = "submit";
      set.disabled = !admin;
      f.appendChild(inp);
      f.appendChild(set);
      f.addEventListener("submit", (ev) => {
        ev.preventDefault();
        act("/api/stage/max", { stage: st.name, workers: inp.value },
            "Stage " + st.name + ": at most " + inp.value + " workers.");
      });
      td.appendChild(f);
    }
    return tr;
  }

  // Rows are made again only when nothing in the table has the focus or
  // is being typed into, so that a keyboard user is not thrown out.
  function showStages(stages) {
    const body = $("stages").tBodies[0];
    if (body.contains(document.activeElement)) {
      for (const st of stages) {
        const tr = body.querySelector('tr[data-stage="' + CSS.escape(st.name) + '"]');
        if (!tr) continue;
        const set = (cls, v) => { const c = tr.querySelector("." + cls); if (c) c.textContent = v; };
        set("depth", num(st.depth));
        set("in-flight", num(st.in_flight));
        set("busy", num(st.busy));
        set("idle", num(st.idle));
        set("rate", st.rate === null ? "–" : String(st.rate));
        set("done", num(st.done));
        set("dead-count", num(st.dead));
        set("state", st.paused ? "paused" : "running");
        const sc = tr.querySelector(".state");
        if (sc) sc.classList.toggle("paused", st.paused);
        const b = tr.querySelector("button.pause");
        if (b) pauseButton(b, st);
      }
      return;
    }
    body.replaceChildren(...stages.map(stageRow));
  }

  function showWorkers(ws) {
    const body = $("workers").tBodies[0];
    if (!ws.length) {
      const tr = el("tr");
      const td = el("td", "no worker runs now", "empty");
      td.colSpan = 7;
      tr.appendChild(td);
      body.replaceChildren(tr);
      return;
    }
    body.replaceChildren(...ws.map((w) => {
      const tr = el("tr");
      cell(tr, w.stage);
      cell(tr, w.slot, "num");
      cell(tr, w.state);
      cell(tr, w.pid || "–", "num");
      cell(tr, w.item === undefined ? "–" : w.item, "item");
      cell(tr, w.attempt === undefined ? "–" : w.attempt, "num");
      cell(tr, w.running_ms === undefined ? "–" : duration(w.running_ms), "num");
      return tr;
    }));
  }

  // ---- the graph: columns by distance from the sources ----

  function showGraph(cfg, stages) {
    const key = JSON.stringify([cfg.edges, stages.map((s) => [s.name, s.depth, s.in_flight, s.busy, s.paused])]);
    if (key === graphShown) return;
    graphShown = key;
    const nodes = new Map();
    const add = (id, kind, label, sub, paused) =>
      nodes.set(id, { id, kind, label, sub, paused, col: 0, row: 0 });
    for (const s of cfg.sources) add("source:" + s.name, "source", s.name, s.label);
    for (const c of cfg.stages) {
      const shards = stages.filter((s) => s.stage === c.name);
      const sum = (f) => shards.reduce((a, s) => a + Math.max(0, s[f] || 0), 0);
      const paused = shards.some((s) => s.paused);
      add("stage:" + c.name, "stage", c.name,
          sum("depth") + " waiting · " + sum("in_flight") + " in flight · " +
          sum("busy") + "/" + sum("workers") + " busy" + (paused ? " · paused" : ""),
          paused);
    }
    for (const s of cfg.sinks) add("sink:" + s.name, "sink", s.name, s.label);
    const edges = cfg.edges.filter((e) => nodes.has(e.from) && nodes.has(e.to));
    for (let pass = 0; pass < nodes.size; pass++) {
      let moved = false;
      for (const e of edges) {
        const a = nodes.get(e.from), b = nodes.get(e.to);
        if (b.col < a.col + 1) { b.col = a.col + 1; moved = true; }
      }
      if (!moved) break;
    }
    const rows = new Map();
    for (const n of nodes.values()) {
      n.row = rows.get(n.col) || 0;
      rows.set(n.col, n.row + 1);
    }
    const W = 250, H = 52, GX = 50, GY = 18;
    const cols = Math.max(...[...nodes.values()].map((n) => n.col)) + 1;
    const maxRows = Math.max(...rows.values());
    const root = svg("svg", {
      viewBox: "0 0 " + (cols * (W + GX) - GX + 4) + " " + (maxRows * (H + GY) - GY + 4),
      width: cols * (W + GX) - GX + 4,
    });
    const x = (n) => 2 + n.col * (W + GX);
    const y = (n) => 2 + n.row * (H + GY);
    for (const e of edges) {
      const a = nodes.get(e.from), b = nodes.get(e.to);
      const x1 = x(a) + W, y1 = y(a) + H / 2, x2 = x(b), y2 = y(b) + H / 2;
      root.appendChild(svg("path", {
        d: "M" + x1 + " " + y1 + " C" + (x1 + GX / 2) + " " + y1 + " " +
           (x2 - GX / 2) + " " + y2 + " " + x2 + " " + y2,
      }));
    }
    for (const n of nodes.values()) {
      const g = svg("g", {});
      g.appendChild(svg("rect", {
        x: x(n), y: y(n), width: W, height: H, rx: 6,
        class: n.kind + (n.paused ? " paused" : ""),
      }));
      const t = svg("text", { x: x(n) + 8, y: y(n) + 20 });
      t.textContent = n.kind + " " + n.label;
      const sub = svg("text", { x: x(n) + 8, y: y(n) + 38, class: "sub" });
      const text = String(n.sub || "");
      sub.textContent = text.length > 40 ? text.slice(0, 39) + "…" : text;
      const title = svg("title", {});
      title.textContent = n.kind + " " + n.label + ": " + (n.sub || "");
      g.append(title, t, sub);
      root.appendChild(g);
    }
    $("graph").replaceChildren(root);
  }

  // ---- charts ----

  function chart(target, series, names) {
    const W = 600, H = 140, P = 4;
    const all = series.flat().filter((v) => v !== null);
    const max = Math.max(1, ...all);
    const n = Math.max(2, ...series.map((s) => s.length));
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none",
                             role: "img" });
    const label = svg("text", { x: 6, y: 12 });
    label.textContent = "max " + (Math.round(max * 10) / 10);
    root.appendChild(label);
    series.forEach((s, i) => {
      const pts = [];
      s.forEach((v, j) => {
        if (v === null) return;
        const px = P + (W - 2 * P) * (j + n - s.length) / (n - 1);
        const py = H - P - (H - 2 * P - 14) * v / max;
        pts.push(px.toFixed(1) + "," + py.toFixed(1));
      });
      root.appendChild(svg("polyline", { points: pts.join(" "),
                                        stroke: COLORS[i % COLORS.length] }));
    });
    const legend = el("div", null, "legend");
    names.forEach((name, i) => {
      const span = el("span");
      const sw = el("i");
      sw.style.background = COLORS[i % COLORS.length];
      span.append(sw, document.createTextNode(name));
      legend.appendChild(span);
    });
    const last = series.map((s, i) => names[i] + " " + (s.length ? s[s.length - 1] : "–"));
    root.setAttribute("aria-label", "last values: " + last.join(", "));
    $(target).replaceChildren(root, legend);
  }

  function showHistory(h) {
    const many = h.stages.length > 1;
    const depth = [h.depth], rate = [h.rate], names = ["all"];
    if (many)
      for (const s of h.stages) {
        depth.push(s.depth);
        rate.push(s.rate);
        names.push(s.name);
      }
    chart("chart-depth", depth, names);
    chart("chart-rate", rate, names);
  }

  // ---- failures and dead letters ----

  function details(summary, text) {
    const d = el("details");
    d.appendChild(el("summary", summary));
    d.appendChild(el("pre", text));
    return d;
  }

  function payloadText(l) {
    if (l.payload === null || l.payload === undefined) return "(none)";
    return l.payload + (l.payload_cut ? "\n… cut: " + l.payload_bytes + " bytes in all" : "");
  }

  function letter(l, kind) {
    const li = el("li");
    const head = el("div", null, "head");
    head.appendChild(el("span", l.id, "id"));
    const meta = [];
    if (l.stage) meta.push("stage " + l.stage);
    if (kind === "failure") {
      meta.push("attempt " + l.attempt);
      meta.push(l.final ? "failed for good" : "will be retried");
      meta.push(l.at);
    } else {
      if (l.item && l.item !== l.id) meta.push("item " + l.item);
      meta.push((l.attempts === null ? "?" : l.attempts) + " attempts");
      if (l.when) meta.push("died " + l.when);
    }
    head.appendChild(el("span", meta.join(" · "), "meta"));
    if (kind === "dead") {
      const box = el("span", null, "actions");
      for (const [action, label] of [["retry", "Retry"], ["discard", "Discard"]]) {
        const b = el("button", label);
        b.type = "button";
        b.dataset.action = action;
        b.dataset.id = l.id;
        b.disabled = !admin;
        b.setAttribute("aria-label", label + " " + l.id);
        b.addEventListener("click", () => {
          if (action === "discard" && !confirm("Discard " + l.id + " for good?")) return;
          act("/api/dead/" + action, { source: deadSource, id: l.id },
              (action === "retry" ? "Retried " : "Discarded ") + l.id + ".");
        });
        box.appendChild(b);
      }
      head.appendChild(box);
    }
    li.appendChild(head);
    li.appendChild(el("div", l.error, "err"));
    if (l.stderr) li.appendChild(details("stderr", l.stderr));
    li.appendChild(details("payload" + (l.payload_cut ? " (cut)" : ""), payloadText(l)));
    return li;
  }

  // Lists are made again only when what they show changed, so that an
  // open <details> stays open and a focused button keeps its focus.
  function replaceIfChanged(list, items, make, emptyText) {
    const key = JSON.stringify(items);
    if (list.dataset.key === key) return;
    if (list.contains(document.activeElement) && list.dataset.key) {
      // Keep the focus: wait until it moves away.
      return;
    }
    list.dataset.key = key;
    if (!items.length) {
      list.replaceChildren(el("li", emptyText, "empty"));
      return;
    }
    list.replaceChildren(...items.map(make));
  }

  function showFailures(f) {
    replaceIfChanged($("failures"), f.failures, (l) => letter(l, "failure"),
                     "no failed attempt so far");
  }

  function showSources(cfg) {
    const withDead = cfg.sources.filter((s) => s.dead_letters);
    const key = JSON.stringify(withDead);
    if (key === sourcesKnown) return;
    sourcesKnown = key;
    const sel = $("dead-source");
    sel.replaceChildren(...withDead.map((s) => {
      const o = el("option", s.name + " (" + s.label + ")" + (s.actions ? "" : ", read only"));
      o.value = s.name;
      return o;
    }));
    if (withDead.length && !deadSource) deadSource = withDead[0].name;
    sel.value = deadSource;
    // A choice only when there is one to make: a pipeline's several
    // sources (its durable edges among them).
    $("dead-source-pick").hidden = withDead.length < 2;
    loadDead();
  }

  async function loadDead() {
    if (!deadSource) {
      $("dead-range").textContent = "this run's sources keep no dead letters hopper can manage";
      return;
    }
    try {
      const q = new URLSearchParams({ source: deadSource, offset: deadOffset, limit: PAGE });
      const r = await fetch("/api/dead?" + q.toString(),
                            { cache: "no-store", headers: auth() });
      const d = await r.json();
      if (!r.ok) { $("dead-range").textContent = d.error || String(r.status); return; }
      if (d.total && deadOffset >= d.total) {
        deadOffset = Math.max(0, Math.floor((d.total - 1) / PAGE) * PAGE);
        return loadDead();
      }
      const last = Math.min(d.total, d.offset + d.letters.length);
      $("dead-range").textContent = d.total
        ? (d.offset + 1) + "–" + last + " of " + d.total
        : "none";
      $("dead-prev").disabled = d.offset === 0;
      $("dead-next").disabled = last >= d.total;
      replaceIfChanged($("dead"), d.letters, (l) => letter(l, "dead"), "no dead letter");
    } catch (e) {
      $("dead-range").textContent = "cannot read the dead letters: " + e.message;
    }
  }

  // ---- polling ----

  async function refresh() {
    try {
      const s = await getJSON("/api/state");
      showSummary(s);
      showStages(s.stages);
      showWorkers(s.workers_now);
      showGraph(s.config, s.stages);
      showSources(s.config);
      const text = JSON.stringify(s.config, null, 2);
      if (text !== configShown) {
        configShown = text;
        $("config").textContent = text;
      }
    } catch (e) {
      const b = $("ready");
      b.textContent = "hopper does not answer";
      b.className = "badge bad";
    }
  }

  async function refreshSlow() {
    try {
      showHistory(await getJSON("/api/history"));
      showFailures(await getJSON("/api/failures"));
    } catch (e) {
      // The next round tries again; the badge says hopper is gone.
    }
    loadDead();
  }

  function start() {
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("token").value.trim();
      if (v) sessionStorage.setItem("hopper-token", v);
      $("token").value = "";
      say(v ? "Token kept for this tab until it closes." : "");
      refresh();
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem("hopper-token");
      say("Token forgotten.");
      refresh();
    });
    $("dead-source").addEventListener("change", (ev) => {
      deadSource = ev.target.value;
      deadOffset = 0;
      loadDead();
    });
    $("dead-prev").addEventListener("click", () => {
      deadOffset = Math.max(0, deadOffset - PAGE);
      loadDead();
    });
    $("dead-next").addEventListener("click", () => {
      deadOffset += PAGE;
      loadDead();
    });
    refresh();
    refreshSlow();
    setInterval(refresh, STATE_MS);
    setInterval(refreshSlow, SLOW_MS);
  }

  start();
})();
