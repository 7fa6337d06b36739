// The new-job form: shows the chosen handler's example payload and schema, and fills the
// payload with the example on request. Without JavaScript the page shows the handler
// chosen when it loaded.
(function () {
  "use strict";
  const _ = window.gettext || ((text) => text);

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const docs = JSON.parse(document.getElementById("jp-handler-docs").textContent);
    const select = document.getElementById("id_name");
    const payload = document.getElementById("id_payload");
    const box = document.getElementById("jp-handler-doc");
    if (!select || !payload || !box) return;

    function show() {
      const doc = docs[select.value] || {};
      box.textContent = "";
      if (doc.example !== undefined && doc.example !== null) {
        const line = document.createElement("p");
        line.append(_("Example payload") + " ");
        const use = document.createElement("button");
        use.type = "button";
        use.className = "button";
        use.id = "jp-use-example";
        use.textContent = _("Use the example");
        use.addEventListener("click", () => { payload.value = pretty(doc.example); });
        line.appendChild(use);
        box.appendChild(line);
        const pre = document.createElement("pre");
        pre.className = "jp-json";
        pre.id = "jp-example";
        pre.textContent = pretty(doc.example);
        box.appendChild(pre);
      }
      if (doc.schema) {
        const details = document.createElement("details");
        const summary = document.createElement("summary");
        summary.textContent = _("JSON schema the payload must match");
        details.appendChild(summary);
        const pre = document.createElement("pre");
        pre.className = "jp-json";
        pre.id = "jp-schema";
        pre.textContent = pretty(doc.schema);
        details.appendChild(pre);
        box.appendChild(details);
      }
    }

    select.addEventListener("change", () => {
      show();
      const doc = docs[select.value] || {};
      if (!payload.value.trim() || payload.dataset.fromExample === "1") {
        payload.value = doc.example === undefined || doc.example === null ? "" : pretty(doc.example);
        payload.dataset.fromExample = "1";
      }
    });
    payload.addEventListener("input", () => { payload.dataset.fromExample = "0"; });
    const use = document.getElementById("jp-use-example");
    if (use) use.addEventListener("click", () => { const doc = docs[select.value] || {}; payload.value = pretty(doc.example); });
  });
})();
