// A job's page while the job is unfinished: polls its live state (/admin/queues/job/<id>/
// live/) every 2 s and moves the progress bar in place; when an attempt ends or starts
// (the status or the attempt count changes) it redraws the page's content from the server,
// and when the job finishes it stops and reloads the page once, so the final attempt, the
// result and the buttons of the finished job show. Without JavaScript the page is as it
// was when it loaded.
(function () {
  "use strict";
  const POLL_MS = 2000;
  const RETRY_MS = 10000; // after a failed request (server restarting, session gone)
  const _ = window.gettext || ((text) => text);

  let timer = null;
  let finished = false;

  function live() {
    return document.getElementById("jp-job-live");
  }

  function setProgress(value) {
    const bar = document.getElementById("jp-live-progress");
    if (bar) {
      bar.setAttribute("aria-valuenow", value);
      bar.title = `${value}%`;
      if (bar.firstElementChild) bar.firstElementChild.style.width = `${value}%`;
    }
    const text = document.getElementById("jp-live-progress-text");
    if (text) text.textContent = `${value}%`;
    // The bar beside an active job's status badge.
    document.querySelectorAll(".field-status_tag .jp-progress").forEach((small) => {
      small.title = `${value}%`;
      if (small.firstElementChild) small.firstElementChild.style.width = `${value}%`;
    });
  }

  function setStatus(data) {
    const badge = document.querySelector(".field-status_tag .jp-badge");
    if (!badge) return;
    badge.textContent = data.status_label;
    badge.dataset.status = data.status;
    badge.style.background = data.status_color;
  }

  // The page's content as the server renders it now, in place: no reload, the scroll
  // position and the open tracebacks kept.
  async function redraw() {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`${response.status}`);
    const fresh = new DOMParser()
      .parseFromString(await response.text(), "text/html")
      .getElementById("content-main");
    const current = document.getElementById("content-main");
    if (!fresh || !current) return;
    const open = new Set(
      [...current.querySelectorAll("details[data-key][open]")].map((d) => d.dataset.key)
    );
    current.replaceWith(fresh);
    fresh.querySelectorAll("details[data-key]").forEach((d) => {
      if (open.has(d.dataset.key)) d.open = true;
    });
  }

  function schedule(delay) {
    window.clearTimeout(timer);
    timer = window.setTimeout(poll, delay);
  }

  async function poll() {
    const node = live();
    if (!node || finished) return;
    if (document.hidden) return; // resumed by visibilitychange
    node.dataset.polling = "1";
    try {
      const response = await fetch(node.dataset.url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
      if (!response.ok) throw new Error(`${response.status}`);
      const data = await response.json();
      setProgress(data.progress);
      setStatus(data);
      if (data.final) {
        finished = true;
        node.dataset.polling = "0";
        window.location.reload();
        return;
      }
      const changed =
        data.status !== node.dataset.status ||
        String(data.attempts_made) !== node.dataset.attemptsMade;
      if (changed) await redraw(); // brings a new #jp-job-live with the new state
      schedule(POLL_MS);
      showError(false);
    } catch (error) {
      showError(true);
      schedule(RETRY_MS);
    }
  }

  function showError(failed) {
    let note = document.getElementById("jp-live-error");
    if (!note && failed) {
      note = document.createElement("p");
      note.id = "jp-live-error";
      note.className = "help";
      note.setAttribute("role", "status");
      note.textContent = _("Live updates are paused: the server did not answer. Retrying.");
      live().after(note);
    }
    if (note) note.hidden = !failed;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const node = live();
    if (!node || node.dataset.poll !== "1") return;
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !finished) schedule(0);
    });
    schedule(POLL_MS);
  });
})();
