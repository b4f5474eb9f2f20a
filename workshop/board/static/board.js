"use strict";
// The board: renders the state the service streams (server-sent events, api/stream); all logic is server-side.
const prefix = document.body.dataset.prefix;

function ago(seconds) {
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function cellNode(cell, now) {
  const td = el("td", { class: cell.status.replace(" ", "-"), "data-status": cell.status });
  if (cell.status === "failing") {
    td.append(el("span", { class: "mistake" }, cell.label || "failing"));
    td.append(el("span", { class: "when" }, `failing ${ago(now - cell.since)}, ${cell.runs} ${cell.runs === 1 ? "run" : "runs"}`));
  } else if (cell.status === "passed") {
    td.append(el("span", { class: "mistake" }, "✓ passed"));
    td.append(el("span", { class: "when" }, `${ago(now - cell.since)} ago`));
  } else if (cell.status === "working") {
    td.append("working");
    td.append(el("span", { class: "when" }, `${cell.runs} ${cell.runs === 1 ? "run" : "runs"}`));
  } else {
    td.append("·");
  }
  return td;
}

function render(state) {
  const panel = document.getElementById("panel");
  panel.replaceChildren(...state.exercises.map((exercise) => {
    const p = state.panel[exercise.name];
    const box = el("div", { class: "exercise", "data-exercise": exercise.name },
      el("h2", {}, exercise.title),
      el("span", { class: "count" }, `${p.passed}/${p.learners} passed`));
    const list = el("ul");
    for (const m of p.mistakes.slice(0, 3)) {
      list.append(el("li", { "data-mistake": m.id || "" }, `${m.learners} ${m.learners === 1 ? "learner" : "learners"}: ${m.label}`));
    }
    box.append(list);
    return box;
  }));
  const grid = document.getElementById("grid");
  grid.tHead.replaceChildren(el("tr", {}, el("th", {}, "Learner"), ...state.exercises.map((e) => el("th", {}, e.name))));
  grid.tBodies[0].replaceChildren(...state.learners.map((learner) =>
    el("tr", { "data-learner": learner.name },
      el("th", {}, learner.name),
      ...state.exercises.map((e) => cellNode(learner.cells[e.name], state.now)))));
}

document.getElementById("projector").addEventListener("click", () => document.body.classList.toggle("projector"));
if (new URLSearchParams(location.search).get("view") === "projector") document.body.classList.add("projector");

const live = document.getElementById("live");
const stream = new EventSource(`${prefix}api/stream?_xsrf=${encodeURIComponent(document.body.dataset.xsrf)}`);
stream.onmessage = (message) => {
  render(JSON.parse(message.data));
  live.textContent = "live";
  live.classList.add("on");
};
stream.onerror = () => {
  live.textContent = "reconnecting…";
  live.classList.remove("on");
};
