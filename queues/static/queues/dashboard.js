// jobplatform dashboard: draws the throughput charts as SVG and refreshes every 5 s. The
// queue rows carry steering controls (queues.js) for users who may use them.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  // The console's catalog (/admin/jp-jsi18n/) defines gettext and interpolate; without it
  // the English text stands.
  const _ = window.gettext || ((text) => text);
  const fmt = window.interpolate || ((text, values) => text.replace(/%\((\w+)\)s/g, (m, k) => values[k]));
  const lang = document.documentElement.lang || undefined;

  // "3 minutes ago" in the page's language, from the server's clock (data.now).
  function relative(iso, nowIso) {
    const seconds = (new Date(iso) - new Date(nowIso)) / 1000;
    const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
    const [unit, size] = units.find(([, size]) => Math.abs(seconds) >= size) || ["second", 1];
    if (Math.abs(seconds) < 1) return _("just now");
    return new Intl.RelativeTimeFormat(lang, { numeric: "auto" }).format(Math.round(seconds / size), unit);
  }

  function timeCell(iso, nowIso) {
    const td = document.createElement("td");
    const time = document.createElement("time");
    time.dateTime = iso;
    time.title = new Date(iso).toLocaleString(lang);
    time.textContent = relative(iso, nowIso);
    td.appendChild(time);
    return td;
  }

  function el(name, attrs) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  }

  // The chart in the svg's own pixels (its viewBox is its size on the page), so the axis
  // text keeps its size at any width; the time labels are spaced to fit.
  const MIN_LABEL_GAP = 44; // px between two time labels ("18:27")

  function drawBars(svg, series, labelEvery) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const width = Math.max(Math.round(svg.getBoundingClientRect().width) || 600, 120);
    const height = 160, bottom = 16, top = 14;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const max = Math.max(1, ...series.map((p) => p[1] + p[2]));
    const step = width / series.length;
    let every = labelEvery;
    while (every * step < MIN_LABEL_GAP && every < series.length) every += labelEvery;
    series.forEach((point, i) => {
      const [at, ok, bad] = point;
      const okH = ((height - bottom - top) * ok) / max;
      const badH = ((height - bottom - top) * bad) / max;
      const x = i * step + 1;
      const w = Math.max(step - 2, 1);
      const title = fmt(_("%(at)s: %(ok)s completed, %(bad)s failed"), { at: new Date(at).toLocaleString(lang), ok, bad }, true);
      const okRect = el("rect", { x, y: height - bottom - okH, width: w, height: okH, class: "ok" });
      okRect.appendChild(el("title", {})).textContent = title;
      svg.appendChild(okRect);
      const badRect = el("rect", { x, y: height - bottom - okH - badH, width: w, height: badH, class: "bad" });
      badRect.appendChild(el("title", {})).textContent = title;
      svg.appendChild(badRect);
      if (i % every === 0) {
        const d = new Date(at);
        const label = el("text", { x: x + 2, y: height - 4 });
        label.textContent = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
        svg.appendChild(label);
      }
    });
    const maxLabel = el("text", { x: 4, y: 11 });
    maxLabel.textContent = fmt(_("max %(n)s"), { n: max }, true);
    svg.appendChild(maxLabel);
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  // Text of a cell, written only when it changed.
  function setText(td, text) {
    if (td.children.length || td.textContent !== text) td.textContent = text;
  }

  // The queue rows are updated in place, keyed by queue name, never rebuilt: a steering
  // control being used (an open limits form, a focused input, a request in flight)
  // survives every refresh. Who may steer is read again at each refresh (data.can).
  function renderQueues(tbody, queues, can, opts) {
    const steer = window.jpQueues;
    const old = new Map();
    for (const tr of tbody.querySelectorAll("tr[data-queue]")) old.set(tr.dataset.queue, tr);
    queues.forEach((q, at) => {
      let tr = old.get(q.name);
      old.delete(q.name);
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.queue = q.name;
      }
      tr.className = q.alerts.length ? "jp-alert" : "";
      while (tr.cells.length < 15) tr.appendChild(document.createElement("td"));
      const cells = tr.cells;
      if (!cells[0].querySelector("a")) {
        const link = document.createElement("a");
        link.href = `../job/?queue__name=${encodeURIComponent(q.name)}`;
        link.textContent = q.name;
        cells[0].textContent = "";
        cells[0].appendChild(link);
      }
      if (steer) steer.pausedCell(cells[1], q, can.pause, opts);
      else setText(cells[1], q.paused ? _("paused") : "-");
      ["waiting", "delayed", "blocked"].forEach((s, i) => setText(cells[2 + i], String(q.counts[s] || 0)));
      if (steer) steer.activeCell(cells[5], q, can.change, opts);
      else setText(cells[5], String(q.counts.active || 0));
      ["completed", "failed", "cancelled"].forEach((s, i) => setText(cells[6 + i], String(q.counts[s] || 0)));
      setText(cells[9], `${q.latency_s} s`);
      setText(cells[10], String(q.completed_1h));
      setText(cells[11], `${Math.round(q.failure_rate * 100)} %`);
      setText(cells[12], q.avg_ms === null ? "-" : `${q.avg_ms} ms`);
      setText(cells[13], q.p95_ms ? `≤ ${q.p95_ms} ms` : "-");
      setText(cells[14], q.alerts.join(", "));
      if (tbody.children[at] !== tr) tbody.insertBefore(tr, tbody.children[at] || null);
    });
    for (const tr of old.values()) tr.remove();
  }

  function renderWorkers(tbody, workers, now) {
    tbody.textContent = "";
    if (!workers.length) {
      const tr = document.createElement("tr");
      const td = cell(_("No worker online."));
      td.colSpan = 6;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
    for (const w of workers) {
      const tr = document.createElement("tr");
      for (const text of [w.id, w.queues.join(", "), w.concurrency, w.jobs_done]) {
        tr.appendChild(cell(String(text)));
      }
      tr.appendChild(timeCell(w.last_heartbeat, now));
      tr.appendChild(cell(w.stale ? _("stale") : _("online")));
      tbody.appendChild(tr);
    }
  }

  function drawCharts(data) {
    drawBars(document.getElementById("jp-minute-chart"), data.per_minute, 10);
    drawBars(document.getElementById("jp-hour-chart"), data.per_hour, 4);
  }

  function render(data, opts) {
    drawCharts(data);
    renderQueues(document.querySelector("#jp-queues tbody"), data.queues, data.can || {}, opts);
    renderWorkers(document.querySelector("#jp-workers tbody"), data.workers, data.now);
    const age = document.getElementById("jp-snapshot-age");
    if (age) age.textContent = data.snapshot_age_s === null ? "-" : data.snapshot_age_s;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("jp-dashboard");
    if (!root) return;
    const opts = { base: root.dataset.queuesUrl, csrf: root.dataset.csrf };
    let data = JSON.parse(document.getElementById("jp-initial").textContent);
    render(data, opts);
    async function refresh() {
      try {
        const response = await fetch(root.dataset.url, { credentials: "same-origin" });
        if (response.ok) {
          data = await response.json();
          render(data, opts);
        }
      } catch (error) {
        /* keep the last data on screen; the next refresh retries */
      }
    }
    setInterval(refresh, 5000);
    // A new width (a turned phone, a resized window): the charts are drawn again to fit.
    let resizing = null;
    window.addEventListener("resize", () => {
      window.cancelAnimationFrame(resizing);
      resizing = window.requestAnimationFrame(() => drawCharts(data));
    });
    // A queue just steered from this page: its row shows the new state at once, and the
    // next refresh comes now.
    document.addEventListener("jp:queue-steered", (event) => {
      const changed = event.detail;
      data.queues = data.queues.map((q) => (q.id === changed.id ? { ...q, ...changed } : q));
      render(data, opts);
      refresh();
    });
  });
})();
