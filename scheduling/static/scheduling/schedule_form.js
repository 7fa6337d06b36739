// The schedule editor: the "kind" radio shows the fields of its kind (cron string and zone,
// interval, or one-off date-time and zone), and a preview beside them says in words when
// the schedule runs and lists its next runs, in its zone and the viewer's, as one types.
// Without JavaScript every field shows and the server's validation decides.
(function () {
  "use strict";
  const _ = window.gettext || ((text) => text);
  const interpolate = window.interpolate || ((fmt, obj) => fmt.replace(/%\((\w+)\)s/g, (m, k) => obj[k]));
  const FIELDS = {
    cron: ["cron", "timezone"],
    interval: ["every", "period"],
    one_off: ["run_at", "timezone"],
  };
  const ALL = ["cron", "every", "period", "run_at", "timezone"];
  const DEBOUNCE_MS = 300;

  function viewerZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      return "";
    }
  }

  function element(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => node.setAttribute(key, value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The run history scrolls sideways on a phone: keyboard users must reach it too.
  function focusableRunHistory() {
    const group = document.getElementById("runs-group");
    if (!group || group.scrollWidth <= group.clientWidth) return;
    group.tabIndex = 0;
    group.setAttribute("role", "region");
    const heading = group.querySelector("h2");
    if (heading) group.setAttribute("aria-label", heading.textContent.trim());
  }

  document.addEventListener("DOMContentLoaded", () => {
    focusableRunHistory();
    const fieldset = document.querySelector("fieldset.jp-timing");
    const box = document.getElementById("jp-schedule-preview");
    if (!fieldset || !box) return;
    const form = fieldset.closest("form");
    const radios = Array.from(fieldset.querySelectorAll("input[name=kind]"));
    const input = (name) => form.elements.namedItem(name);
    const rows = {};
    ALL.forEach((name) => {
      const field = input(name);
      rows[name] = field ? field.closest(".form-row") : null;
    });
    const readOnlyRow = box.closest(".form-row");
    if (readOnlyRow) readOnlyRow.classList.add("jp-preview-row");

    function kind() {
      const checked = radios.find((radio) => radio.checked);
      return checked ? checked.value : "cron";
    }

    function showFields() {
      const shown = new Set(FIELDS[kind()] || ALL);
      ALL.forEach((name) => {
        const row = rows[name];
        if (!row) return;
        // every and period share a row: it shows when either belongs to the kind.
        const names = ALL.filter((other) => rows[other] === row);
        row.hidden = !names.some((other) => shown.has(other));
      });
    }

    function query() {
      const params = new URLSearchParams({ kind: kind(), viewer_tz: viewerZone() });
      (FIELDS[kind()] || []).forEach((name) => {
        const field = input(name);
        if (field) params.set(name, field.value);
      });
      return params;
    }

    function renderErrors(errors) {
      box.textContent = "";
      box.classList.add("jp-preview-invalid");
      const list = element("ul", { class: "errorlist", id: "jp-preview-errors" });
      Object.entries(errors).forEach(([field, message]) => {
        const label = form.querySelector(`label[for=id_${field}]`);
        const name = label ? label.textContent.replace(/:$/, "") : field;
        list.appendChild(element("li", { "data-field": field }, `${name}: ${message}`));
      });
      box.appendChild(list);
    }

    function render(data) {
      box.textContent = "";
      box.classList.remove("jp-preview-invalid");
      box.appendChild(element("p", { class: "jp-preview-description", id: "jp-preview-description" }, data.description));
      if (!data.next_runs.length) {
        box.appendChild(element("p", { class: "jp-muted" }, _("No upcoming runs: this time has passed.")));
        return;
      }
      const sameZone = data.timezone === data.viewer_timezone;
      const table = element("table", { class: "jp-preview-runs", id: "jp-preview-runs" });
      const caption = element("caption", {}, _("Next runs"));
      table.appendChild(caption);
      const head = element("tr");
      head.appendChild(element("th", { scope: "col" }, interpolate(_("Schedule (%(zone)s)"), { zone: data.timezone }, true)));
      if (!sameZone) {
        head.appendChild(element("th", { scope: "col" }, interpolate(_("Yours (%(zone)s)"), { zone: data.viewer_timezone }, true)));
      }
      table.appendChild(element("thead")).appendChild(head);
      const body = table.appendChild(element("tbody"));
      data.next_runs.forEach((run) => {
        const row = body.appendChild(element("tr"));
        row.appendChild(element("td", {}, "")).appendChild(element("time", { datetime: run.local }, run.local_text));
        if (!sameZone) {
          row.appendChild(element("td", {}, "")).appendChild(element("time", { datetime: run.viewer }, run.viewer_text));
        }
      });
      box.appendChild(table);
    }

    let timer = null;
    let inFlight = null;
    function refresh() {
      if (inFlight) inFlight.abort();
      inFlight = new AbortController();
      box.setAttribute("aria-busy", "true");
      fetch(`${box.dataset.url}?${query()}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        signal: inFlight.signal,
      })
        .then((response) => response.json().then((data) => ({ ok: response.ok, data })))
        .then(({ ok, data }) => {
          if (ok) render(data);
          else renderErrors(data.errors || { kind: _("The preview is not available.") });
        })
        .catch((error) => {
          if (error.name !== "AbortError") renderErrors({ kind: _("The preview is not available.") });
        })
        .finally(() => box.removeAttribute("aria-busy"));
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, DEBOUNCE_MS);
    }

    radios.forEach((radio) => radio.addEventListener("change", () => { showFields(); refresh(); }));
    ALL.forEach((name) => {
      const field = input(name);
      if (!field) return;
      field.addEventListener("input", schedule);
      field.addEventListener("change", schedule);
    });
    fieldset.classList.add("jp-timing-js");
    showFields();
    refresh();
  });
})();
