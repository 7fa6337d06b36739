// Steering queues in place, on the queue list and the dashboard: pause, resume and limits.
// Each control is a plain form (it works without JavaScript: the server redirects back
// with a message). Here a submit becomes a fetch() asking for JSON; the answer is shown
// as an admin message and announced as a "jp:queue-steered" event with the queue's new
// state, which the page uses to update its row in place. window.jpQueues also builds and
// refreshes the dashboard's controls (dashboard.js re-renders its rows every few seconds).
(function () {
  "use strict";
  const _ = window.gettext || ((text) => text);
  const fmt = window.interpolate || ((text, values) => text.replace(/%\((\w+)\)s/g, (m, k) => values[k]));
  const LIMITS = ["concurrency", "rate_limit_max", "rate_limit_duration_ms"];

  // One message at a time, where the admin puts its own.
  function say(text, level) {
    let list = document.querySelector("ul.messagelist");
    if (!list) {
      list = document.createElement("ul");
      list.className = "messagelist";
      const content = document.getElementById("content");
      content.parentNode.insertBefore(list, content);
    }
    list.setAttribute("role", "status");
    list.textContent = "";
    const item = document.createElement("li");
    item.className = level;
    item.textContent = text;
    list.appendChild(item);
  }

  // The endpoint of another step of the same queue: .../<id>/limits/ -> .../<id>/pause/.
  function stepUrl(url, step) {
    return url.replace(/[a-z]+\/$/, `${step}/`);
  }

  function inputs(form) {
    return Array.from(form.elements).filter((el) => LIMITS.includes(el.name));
  }

  function pending(form) {
    return form.dataset.pending === "1";
  }

  // Being edited: typed into and not saved yet, or focused. A refresh leaves it alone.
  function editing(form) {
    return form.dataset.dirty === "1" || inputs(form).includes(document.activeElement);
  }

  async function send(form, button) {
    const url = button && button.hasAttribute("formaction") ? button.formAction : form.action;
    form.dataset.pending = "1";
    if (button) button.disabled = true;
    try {
      const response = await fetch(url, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      let data = null;
      try {
        data = await response.json();
      } catch (error) {
        data = null;
      }
      form.dataset.pending = "";
      if (button) button.disabled = false;
      if (!data) {
        say(fmt(_("The server answered %(status)s; nothing was changed."), { status: response.status }, true), "error");
        return;
      }
      say(data.message, data.ok ? "success" : "error");
      for (const input of inputs(form)) {
        const bad = !data.ok && data.errors && input.name in data.errors;
        if (bad) input.setAttribute("aria-invalid", "true");
        else input.removeAttribute("aria-invalid");
      }
      if (data.ok) {
        form.dataset.dirty = "";
        document.dispatchEvent(new CustomEvent("jp:queue-steered", { detail: data.queue }));
      }
    } catch (error) {
      say(_("The change could not be sent; nothing was changed. Try again."), "error");
    } finally {
      form.dataset.pending = "";
      if (button) button.disabled = false;
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.classList || !form.classList.contains("jp-steer-form")) return;
    event.preventDefault();
    if (!pending(form)) send(form, event.submitter);
  });

  document.addEventListener("input", (event) => {
    const form = event.target.form;
    if (form && form.classList.contains("jp-steer-form")) form.dataset.dirty = "1";
  });

  // The pause button of a queue: what it does follows the queue's state.
  function syncPause(button, q) {
    const step = q.paused ? "resume" : "pause";
    button.dataset.steer = step;
    button.textContent = q.paused ? _("Resume") : _("Pause");
    const url = button.hasAttribute("formaction") ? button.getAttribute("formaction") : button.form.getAttribute("action");
    if (button.hasAttribute("formaction")) button.setAttribute("formaction", stepUrl(url, step));
    else button.form.setAttribute("action", stepUrl(url, step));
  }

  function syncLimits(form, q) {
    if (editing(form) || pending(form)) return;
    for (const input of inputs(form)) {
      input.value = q[input.name] === null ? "" : String(q[input.name]);
      input.removeAttribute("aria-invalid");
    }
  }

  // Utilisation: active jobs over the concurrency cap, with a bar; ``bare`` without a cap.
  function utilisation(q, bare) {
    const box = document.createElement("div");
    box.className = "jp-util-box";
    const text = document.createElement("span");
    text.className = "jp-util";
    box.appendChild(text);
    if (q.concurrency === null) {
      text.textContent = bare;
      return box;
    }
    text.textContent = `${q.active} / ${q.concurrency} · ${q.utilisation_pct} %`;
    text.title = _("utilisation: active jobs / concurrency");
    const meter = document.createElement("span");
    meter.className = q.utilisation_pct > 100 ? "jp-meter jp-over" : "jp-meter";
    const fill = document.createElement("span");
    fill.style.width = `${Math.min(q.utilisation_pct, 100)}%`;
    meter.appendChild(fill);
    box.appendChild(meter);
    return box;
  }

  function hiddenInput(name, value) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    return input;
  }

  function steerForm(className, action, opts) {
    const form = document.createElement("form");
    form.className = `jp-steer-form ${className}`;
    form.method = "post";
    form.setAttribute("action", action);
    form.appendChild(hiddenInput("csrfmiddlewaretoken", opts.csrf));
    form.appendChild(hiddenInput("next", window.location.pathname + window.location.search));
    return form;
  }

  function submitButton(step, label) {
    const button = document.createElement("button");
    button.type = "submit";
    button.className = "button jp-steer-button";
    button.dataset.steer = step;
    button.textContent = label;
    return button;
  }

  // The dashboard's "paused" cell: the state, and (if allowed) the pause/resume button.
  function pausedCell(td, q, may, opts) {
    let state = td.querySelector(".jp-state");
    if (!state) {
      td.textContent = "";
      state = document.createElement("span");
      state.className = "jp-state";
      td.appendChild(state);
    }
    state.textContent = q.paused ? _("paused") : "-";
    let form = td.querySelector("form.jp-steer-pause");
    if (!may) {
      if (form) form.remove();
      return;
    }
    if (!form) {
      form = steerForm("jp-steer-pause", `${opts.base}${q.id}/pause/`, opts);
      form.appendChild(submitButton("pause", _("Pause")));
      td.append(" ", form);
    }
    if (!pending(form)) syncPause(form.querySelector("button"), q);
  }

  function limitsDetails(q, opts) {
    const details = document.createElement("details");
    details.className = "jp-limits";
    const summary = document.createElement("summary");
    summary.textContent = _("Limits");
    details.appendChild(summary);
    const form = steerForm("jp-steer-limits", `${opts.base}${q.id}/limits/`, opts);
    const labels = {
      concurrency: _("concurrency"),
      rate_limit_max: _("rate limit max"),
      rate_limit_duration_ms: _("rate limit duration ms"),
    };
    for (const name of LIMITS) {
      const label = document.createElement("label");
      label.append(`${labels[name]} `);
      const input = document.createElement("input");
      Object.assign(input, { type: "number", name, min: "1", step: "1", className: "jp-num", placeholder: _("no limit") });
      input.inputMode = "numeric";
      label.appendChild(input);
      form.appendChild(label);
    }
    form.appendChild(submitButton("limits", _("Save")));
    details.appendChild(form);
    return details;
  }

  // The dashboard's "active" cell: utilisation, and (if allowed) the limits form, which a
  // refresh neither closes nor overwrites while it is being edited.
  function activeCell(td, q, may, opts) {
    const box = utilisation(q, String(q.active));
    const old = td.querySelector(".jp-util-box");
    if (old) old.replaceWith(box);
    else {
      td.textContent = "";
      td.appendChild(box);
    }
    let details = td.querySelector("details.jp-limits");
    if (!may) {
      if (details) details.remove();
      return;
    }
    if (!details) {
      details = limitsDetails(q, opts);
      td.appendChild(details);
    }
    syncLimits(details.querySelector("form"), q);
  }

  // The queue list: its row of the queue, updated from the answer.
  function updateListRow(q) {
    const table = document.getElementById("result_list");
    const checkbox = table && table.querySelector(`input.action-select[value="${q.id}"]`);
    const row = checkbox && checkbox.closest("tr");
    if (!row) return;
    const icon = row.querySelector("td.field-paused img");
    if (icon) {
      icon.src = icon.src.replace(/icon-(yes|no)\.svg/, q.paused ? "icon-yes.svg" : "icon-no.svg");
      icon.alt = q.paused ? "True" : "False";
    }
    const cell = row.querySelector("td.field-active");
    if (cell) {
      cell.textContent = "";
      cell.appendChild(utilisation(q, String(q.active)));
    }
    const pause = row.querySelector(`button[form="jp-pause-${q.id}"]`);
    if (pause && !pending(pause.form)) syncPause(pause, q);
    const limits = document.getElementById(`jp-steer-${q.id}`);
    if (limits) syncLimits(limits, q);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const table = document.getElementById("result_list");
    if (!table || !document.getElementById("jp-steer-forms")) return;
    // The limits inputs are not the list's editable fields: typing in them must not make
    // the admin's action button warn of unsaved changes.
    table.addEventListener("change", (event) => {
      if (event.target.classList.contains("jp-num")) event.stopPropagation();
    }, true);
    document.addEventListener("jp:queue-steered", (event) => updateListRow(event.detail));
  });

  window.jpQueues = { pausedCell, activeCell };
})();
