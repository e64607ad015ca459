// Keeps the pending list live without a reload: fetches the JSON API once a second and
// rebuilds the rows with textContent only (arguments are hostile text: never innerHTML).
"use strict";
(function () {
  const table = document.getElementById("pending");
  if (!table) return;
  const rows = document.getElementById("pending-rows");
  const count = document.getElementById("count");
  const status = document.getElementById("live-status");
  const source = table.dataset.live;
  const detail = table.dataset.detail;

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function render(escalations) {
    const fresh = [];
    for (const e of escalations) {
      const tr = document.createElement("tr");
      tr.dataset.id = e.id;
      tr.appendChild(cell(e.created));
      const session = cell(e.session_id + " ");
      const worktree = document.createElement("span");
      worktree.className = "muted";
      worktree.textContent = e.worktree;
      session.appendChild(worktree);
      tr.appendChild(session);
      const call = document.createElement("td");
      const link = document.createElement("a");
      link.href = detail.replace("ID", encodeURIComponent(e.id));
      link.textContent = e.call;
      call.appendChild(link);
      tr.appendChild(call);
      tr.appendChild(cell(e.rule));
      tr.appendChild(cell(e.reason));
      tr.appendChild(cell(e.left));
      fresh.push(tr);
    }
    if (fresh.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell("Nothing is waiting.");
      td.colSpan = 6;
      tr.appendChild(td);
      fresh.push(tr);
    }
    rows.replaceChildren(...fresh);
    count.textContent = "(" + escalations.length + ")";
    document.title = (escalations.length ? "(" + escalations.length + ") " : "") + "IronCurtain approvals";
  }

  async function tick() {
    try {
      const response = await fetch(source, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      render((await response.json()).escalations);
      status.textContent = "Updates live.";
    } catch (err) {
      status.textContent = "Live updates paused (" + err.message + "); retrying.";
    } finally {
      setTimeout(tick, 1000);
    }
  }
  setTimeout(tick, 1000);
})();
