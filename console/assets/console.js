// fedsoc console: live refresh of the federation page. Polls the
// console's own /api/status (same origin) and rewrites the roster and the
// running round with textContent only: no HTML from the network is parsed.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) { return; }
  const text = (id, value) => {
    const el = document.getElementById(id);
    if (el) { el.textContent = value; }
  };
  const age = (s) => s < 60 ? s.toFixed(0) + " s" : (s / 60).toFixed(1) + " min";
  function render(view) {
    text("completed", String(view.completed_rounds));
    text("queued", String(view.queued_rounds));
    const roster = document.getElementById("roster");
    if (roster) {
      roster.replaceChildren(...view.roster.map((m) => {
        const li = document.createElement("li");
        li.className = m.online ? "online" : "offline";
        li.dataset.member = m.id;
        li.textContent = (m.online ? "\u25cf " : "\u25cb ") + m.id + (m.online ? " online" : " offline");
        return li;
      }));
    }
    const online = view.roster.filter((m) => m.online).length;
    text("online-count", online + " of " + view.roster.length + " online, a round needs " + view.min_participants);
    const r = view.running;
    text("running", r
      ? "round " + r.round + " (" + r.kind + ", attempt " + r.attempt + "): stage " + r.stage +
        " for " + age(r.stage_age_s) + ", round for " + age(r.round_age_s) +
        "; members " + r.members.join(", ") + (r.dropped.length ? "; dropped " + r.dropped.join("; ") : "")
      : "no round running");
    text("halted", view.halted ? "HALTED: " + view.halted : "");
  }
  function poll() {
    fetch("/api/status", { cache: "no-store" })
      .then((r) => r.json())
      .then((reply) => {
        if (reply.federation) { render(reply.federation); text("live-error", ""); }
        else { text("live-error", reply.error || "no status"); }
        live.dataset.refreshed = String(Number(live.dataset.refreshed || "0") + 1);
        text("updated", "updated " + new Date().toLocaleTimeString());
      })
      .catch((e) => { text("live-error", "the console is unreachable: " + e); })
      .finally(() => { setTimeout(poll, 2000); });
  }
  poll();
})();
