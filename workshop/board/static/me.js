"use strict";
// A learner's own page: their events, newest first (api/events returns only the caller's).
const prefix = document.body.dataset.prefix;

async function load() {
  const response = await fetch(`${prefix}api/events`, { headers: { "X-XSRFToken": document.body.dataset.xsrf } });
  const { events } = await response.json();
  const rows = events.reverse().map((e) => {
    const tr = document.createElement("tr");
    const cells = [new Date(e.received * 1000).toLocaleTimeString(), e.exercise, e.check + (e.part === "all" ? "" : ` (${e.part})`),
      e.passed ? "passed" : "failed", e.hint || "", `${e.duration_s.toFixed(2)} s`];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    tr.className = e.passed ? "passed" : "failing";
    return tr;
  });
  document.querySelector("#mine tbody").replaceChildren(...rows);
}
load();
setInterval(load, 5000);
