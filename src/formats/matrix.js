"use strict";
// Data comes from the JSON block the page carries; nothing is fetched.
const D = JSON.parse(document.getElementById("data").textContent);
const cols = D.columns;
const sel = document.getElementById("baseline");
const panel = document.getElementById("details");
const content = document.getElementById("content");

// Nested observations compare value by value under dotted keys, like `isocheck diff`.
function flatten(v, prefix, out) {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    for (const k of Object.keys(v)) flatten(v[k], prefix ? prefix + "." + k : k, out);
  } else if (prefix) {
    out[prefix] = JSON.stringify(v);
  }
  return out;
}

function cell(id, col) { return (D.cells[id] || [])[col] || null; }

// Facts only, as the report builder reduced them (`facts`: what `isocheck
// diff` compares); `measurements` depend on what else ran and are never compared.
function changedFacts(id, col, base) {
  const a = cell(id, base), b = cell(id, col);
  if (!a || !b || col === base) return [];
  const fa = a.facts || {}, fb = b.facts || {};
  const keys = [...new Set([...Object.keys(fa), ...Object.keys(fb)])].sort();
  return keys.filter(k => fa[k] !== fb[k]).map(k => [k, fa[k], fb[k]]);
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function kvTable(title, rows, cls, head) {
  const box = el("section", { class: cls });
  box.append(el("h3", {}, title));
  if (!rows.length) { box.append(el("p", {}, "none")); return box; }
  const t = el("table");
  if (head) {
    const tr = el("tr");
    for (const h of head) tr.append(el("th", {}, h));
    t.append(tr);
  }
  for (const r of rows) {
    const tr = el("tr");
    for (const c of r) tr.append(el("td", {}, c === undefined ? "(absent)" : c));
    t.append(tr);
  }
  box.append(t);
  return box;
}

function markChanged() {
  const base = Number(sel.value);
  for (const td of document.querySelectorAll("td.cell")) {
    const id = td.parentElement.dataset.id, col = Number(td.dataset.col);
    td.classList.toggle("changed", changedFacts(id, col, base).length > 0);
  }
}

function open(id, col) {
  const c = cell(id, col), base = Number(sel.value);
  document.querySelectorAll("td.selected").forEach(t => t.classList.remove("selected"));
  const td = document.querySelector(`tr[data-id="${CSS.escape(id)}"] td[data-col="${col}"]`);
  if (td) { td.classList.add("selected"); td.scrollIntoView({ block: "center", inline: "nearest" }); }
  content.replaceChildren();
  content.append(el("h2", {}, id), el("p", { class: "col" }, cols[col].label + " — kernel " + cols[col].kernel));
  content.append(el("p", { class: "asserts-full" }, D.asserts[id] || ""));
  const status = c ? c.status : "absent";
  content.append(el("p", { class: "status s-" + status }, "status: " + status));
  if (c && c.reason) content.append(el("pre", { class: "reason" }, c.reason));
  if (c) content.append(el("p", { class: "control" }, "control: " + (c.control || "none in the catalogue")));
  if (col !== base) {
    const b = cell(id, base);
    content.append(el("p", { class: "vs-base" }, `on the baseline ${cols[base].label}: ${b ? b.status : "absent"}`));
  }
  if (c) {
    const ch = changedFacts(id, col, base);
    const title = `facts changed against ${cols[base].label}` + (col === base ? " (this is the baseline)" : "");
    content.append(kvTable(title, ch, "changed-facts", ["fact", cols[base].label, cols[col].label]));
    content.append(kvTable("observations", Object.entries(flatten(c.observations || {}, "", {})), "observations"));
    if (c.measurements) {
      content.append(kvTable("measurements (not compared)", Object.entries(flatten(c.measurements, "", {})), "measurements"));
    }
  }
  Object.assign(panel.dataset, { id, col: String(col), status });
  panel.hidden = false;
  history.replaceState(null, "", `#cell=${encodeURIComponent(id)}@${col}&base=${base}`);
}

document.getElementById("matrix").addEventListener("click", ev => {
  const td = ev.target.closest("td.cell");
  if (td) open(td.parentElement.dataset.id, Number(td.dataset.col));
});
document.getElementById("matrix").addEventListener("keydown", ev => {
  const td = ev.target.closest("td.cell");
  if (td && ev.key === "Enter") open(td.parentElement.dataset.id, Number(td.dataset.col));
});
document.getElementById("close").addEventListener("click", () => { panel.hidden = true; });
sel.addEventListener("change", () => {
  markChanged();
  if (!panel.hidden) open(panel.dataset.id, Number(panel.dataset.col));
});

// Deep link: #cell=ID@COL&base=N opens a cell on load (used by the browser test too).
const params = new URLSearchParams(location.hash.slice(1));
if (params.has("base")) sel.value = params.get("base");
markChanged();
const target = params.get("cell");
if (target && target.includes("@")) {
  const at = target.lastIndexOf("@");
  open(target.slice(0, at), Number(target.slice(at + 1)));
}
Object.assign(document.body.dataset, {
  rows: String(document.querySelectorAll("tr.exp-row").length),
  cols: String(cols.length),
  changed: String(document.querySelectorAll("td.cell.changed").length),
  ready: "1",
});
