// The schedule list: a row's Run now / Pause / Resume button posts with fetch() and
// updates its row in place (status, next run, last runs, buttons) and the message list.
// Without JavaScript the button submits the list's form to its own URL, which redirects
// back with a message.
(function () {
  "use strict";
  const _ = window.gettext || ((text) => text);

  function showMessage(text, ok) {
    let list = document.querySelector("ul.messagelist");
    if (!list) {
      list = document.createElement("ul");
      list.className = "messagelist";
      const content = document.getElementById("content") || document.body;
      content.parentNode.insertBefore(list, content);
    }
    list.textContent = "";
    const item = document.createElement("li");
    item.className = ok ? "success" : "error";
    item.textContent = text;
    list.appendChild(item);
  }

  // On a phone each row is a card (schedules.css): its cells carry their column's name.
  function labelCells() {
    const table = document.getElementById("result_list");
    if (!table || !table.tHead) return;
    const headers = Array.from(table.tHead.rows[0].cells).map((cell) => cell.textContent.trim());
    Array.from(table.tBodies[0].rows).forEach((row) => {
      Array.from(row.cells).forEach((cell, index) => {
        if (cell.tagName === "TD" && !cell.classList.contains("action-checkbox") && headers[index]) {
          cell.dataset.label = headers[index];
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    labelCells();
    const form = document.getElementById("changelist-form");
    if (!form) return;
    form.addEventListener("click", (event) => {
      const button = event.target.closest("button.jp-row-action");
      if (!button) return;
      event.preventDefault();
      const token = form.querySelector("input[name=csrfmiddlewaretoken]");
      const row = button.closest("tr");
      button.disabled = true;
      fetch(button.formAction, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": token ? token.value : "" },
      })
        .then((response) => response.json().then((data) => ({ response, data })))
        .then(({ data }) => {
          showMessage(data.message, data.ok);
          Object.entries(data.cells || {}).forEach(([name, html]) => {
            const cell = row.querySelector(`.field-${name}`);
            if (!cell) return;
            if (name === "status") cell.textContent = html;
            else cell.innerHTML = html; // server-rendered and escaped (format_html)
          });
        })
        .catch(() => {
          showMessage(_("The request failed; reload the page and try again."), false);
        })
        .finally(() => { button.disabled = false; });
    });
  });
})();
