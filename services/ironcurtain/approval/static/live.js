// Live updates pushed by the server (Server-Sent Events, /api/v1/events): the pending list
// refetches its own page when Redis says a pending set changed; the detail page shows a
// colleague's decision as it is made. Rows are built with textContent only (arguments are
// hostile text: never innerHTML); the text is the server's `shown` fields, already neutral.
"use strict";
(function () {
  let offset = 0; // server clock minus ours, in seconds

  function ticking() {
    const now = Date.now() / 1000 + offset;
    for (const span of document.querySelectorAll("[data-deadline]")) {
      const left = Math.floor(Number(span.dataset.deadline) - now);
      span.textContent = left > 0 ? left + "s" : "expired";
      span.classList.toggle("urgent", left > 0 && left <= 30);
    }
  }
  setInterval(ticking, 1000);

  // One EventSource; reconnects by itself after the server ends a stream (its lifetime),
  // and after a refusal (all slots taken: 503) we open a new one a little later.
  function live(url, onEvent, status) {
    let source = null;
    function open() {
      source = new EventSource(url);
      source.onopen = () => { if (status) status.textContent = "Updates live."; onEvent("open", {}); };
      for (const kind of ["pending", "decided", "reset"]) {
        source.addEventListener(kind, (m) => {
          let data = {};
          try { data = JSON.parse(m.data); } catch (err) { data = {}; }
          onEvent(kind, data);
        });
      }
      source.onerror = () => {
        if (status) status.textContent = "Live updates paused; reconnecting.";
        if (source.readyState === EventSource.CLOSED) setTimeout(open, 5000);
      };
    }
    open();
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function muted(text, cls) {
    const span = document.createElement("span");
    span.className = cls || "muted";
    span.textContent = text;
    return span;
  }

  // A session's label as templates/labels.html builds it: the registered text, the session's
  // own differing claim marked apart, "unverified" without a registration.
  function label(l) {
    const span = document.createElement("span");
    span.className = "label " + l.name + (l.verified ? "" : " unverified") +
      (l.disputed ? " disputed" : "");
    span.dataset.label = l.name;
    if (l.verified) span.appendChild(muted(l.text || "", "registered"));
    else span.appendChild(muted("unverified: no registration", "unverified-mark"));
    if (l.disputed) {
      span.appendChild(document.createTextNode(" "));
      span.appendChild(muted('(the session claims "' + (l.claim || "") + '")', "claim"));
    }
    return span;
  }

  const table = document.getElementById("pending");
  if (table) {
    const rows = document.getElementById("pending-rows");
    const count = document.getElementById("count");
    const status = document.getElementById("live-status");
    const detail = table.dataset.detail;
    let seen = null; // ids on the page after the first fetch
    let busy = false, again = false;

    const notify = document.getElementById("notify");
    if (notify && "Notification" in window && Notification.permission === "default") {
      notify.hidden = false;
      notify.addEventListener("click", () => {
        Notification.requestPermission().then(() => { notify.hidden = true; });
      });
    }

    function row(e) {
      const s = e.shown || {};
      const tr = document.createElement("tr");
      tr.dataset.id = e.id;
      if (e.invalid) tr.className = "invalid";
      const pick = document.createElement("td");
      if (!e.invalid) {
        const box = document.createElement("input");
        box.type = "checkbox";
        box.name = "id";
        box.value = e.id;
        box.setAttribute("form", "bulk");
        pick.appendChild(box);
      }
      tr.appendChild(pick);
      const deadline = document.createElement("td");
      if (!e.invalid) {
        const left = muted(e.left, "left");
        left.dataset.deadline = String(e.deadline);
        deadline.appendChild(left);
        deadline.appendChild(document.createTextNode(" "));
        deadline.appendChild(muted(s.deadline || ""));
      }
      tr.appendChild(deadline);
      const session = cell((s.session_id || "") + " ");
      const where = muted("");
      where.appendChild(label((s.labels || {}).worktree || { name: "worktree" }));
      session.appendChild(where);
      if (e.auto_review) {
        session.appendChild(document.createTextNode(" "));
        session.appendChild(muted("auto-reviewer on", "review"));
      }
      tr.appendChild(session);
      const call = document.createElement("td");
      const link = document.createElement("a");
      link.href = detail.replace("ID", encodeURIComponent(e.id));
      link.textContent = s.call || "";
      call.appendChild(link);
      tr.appendChild(call);
      const targets = document.createElement("td");
      for (const t of s.targets || []) {
        const span = document.createElement("span");
        span.className = "target " + t.kind;
        if (t.text) {
          const code = document.createElement("code");
          code.textContent = t.text;
          span.appendChild(code);
        }
        if (t.host) {
          span.appendChild(document.createTextNode(" host "));
          const host = document.createElement("strong");
          host.className = "host";
          host.textContent = t.host;
          span.appendChild(host);
        }
        targets.appendChild(span);
        targets.appendChild(document.createTextNode(" "));
      }
      tr.appendChild(targets);
      tr.appendChild(cell(s.rule || ""));
      tr.appendChild(cell(s.reason || ""));
      return tr;
    }

    function render(listing) {
      const checked = new Set(
        Array.from(rows.querySelectorAll("input[name=id]:checked")).map((b) => b.value));
      const fresh = listing.escalations.map(row);
      for (const tr of fresh) {
        const box = tr.querySelector("input[name=id]");
        if (box && checked.has(box.value)) box.checked = true;
      }
      if (fresh.length === 0) {
        const tr = document.createElement("tr");
        tr.className = "empty";
        const td = cell("Nothing is waiting.");
        td.colSpan = 7;
        tr.appendChild(td);
        fresh.push(tr);
      }
      rows.replaceChildren(...fresh);
      count.textContent = "(" + listing.total + ")";
      document.title = (listing.total ? "(" + listing.total + ") " : "") + "IronCurtain approvals";
      offset = listing.now - Date.now() / 1000;
      ticking();
      const ids = listing.escalations.map((e) => e.id);
      if (seen !== null && document.hidden && "Notification" in window &&
          Notification.permission === "granted") {
        const added = listing.escalations.filter((e) => !seen.has(e.id));
        if (added.length) {
          new Notification("IronCurtain: " + added.length + " new escalation(s)", {
            body: added.map((e) => (e.shown || {}).call || "").join(", "),
            tag: "ironcurtain-pending",
          });
        }
      }
      seen = new Set(ids);
    }

    async function refetch() {
      if (busy) { again = true; return; }
      busy = true;
      try {
        const response = await fetch(table.dataset.live, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
          cache: "no-store",
        });
        if (!response.ok) throw new Error("HTTP " + response.status);
        render(await response.json());
      } catch (err) {
        status.textContent = "Live updates paused (" + err.message + "); retrying.";
      } finally {
        busy = false;
        if (again) { again = false; refetch(); }
      }
    }

    live(table.dataset.events, () => refetch(), status);
    setInterval(refetch, 30000); // a safety net should an event be missed
  }

  const one = document.getElementById("live-detail");
  if (one) {
    const mine = one.dataset.id;
    async function showDecision() {
      const response = await fetch(one.dataset.api, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
      if (!response.ok) return;
      const found = await response.json();
      const d = found.decision;
      if (!d) return;
      const p = document.createElement("p");
      p.id = "decision";
      p.className = "decision " + d.verdict;
      p.appendChild(document.createTextNode("Decided: "));
      const verdict = document.createElement("strong");
      verdict.textContent = d.verdict;
      p.appendChild(verdict);
      p.appendChild(document.createTextNode(
        " by " + d.shown.by + " at " + d.when + (d.reason ? ": " + d.shown.reason : "")));
      const form = document.getElementById("decide");
      const standing = document.getElementById("decision");
      if (form) form.replaceWith(p);
      else if (standing) standing.replaceWith(p);
    }
    live(one.dataset.events, (kind, data) => {
      if (kind === "open") one.dataset.live = "open";
      if ((kind === "decided" && data.id === mine) || kind === "open" || kind === "reset") {
        showDecision();
      }
    }, null);
  }
})();
