// The page: a form over POST /v1/recommend and /v1/sweep. It only draws what the service
// computed (bytes, budgets, fits); no estimate is made here.
"use strict";

const $ = (id) => document.getElementById(id);
const PARTS = ["weights", "vision", "kv_cache", "linear_state", "compute", "overhead"];
const KV_COLORS = { f16: "#3b6fb6", bf16: "#8a5cc2", q8_0: "#d9822b", q4_0: "#2f9e8f", fp8: "#b42318" };

function gib(bytes) { return (bytes / 2 ** 30).toFixed(1) + " GiB"; }
function tokens(n) { return n % 1024 === 0 ? (n / 1024) + "k" : String(n); }
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}
function status(text, error) {
  const s = $("status");
  s.textContent = text;
  s.className = error ? "error" : "";
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  };
  const r = await fetch(path, init);
  const doc = await r.json();
  if (!r.ok) throw new Error(doc.error ? doc.error.message : r.statusText);
  return doc;
}

function hardware() {
  const hw = {};
  const gpu = $("gpu").value, count = parseInt($("count").value || "1", 10);
  const vram = $("vram").value.trim(), ram = $("ram").value.trim();
  if (gpu && gpu !== "vram") hw.gpu = count > 1 ? `${count}x ${gpu}` : gpu;
  if (vram) hw.vram = vram;
  if (ram) hw.ram = ram;
  return hw;
}

async function loadGPUs() {
  try {
    const doc = await api("/v1/gpus");
    const select = $("gpu");
    for (const g of doc.gpus) {
      const size = g.vram_gib === null ? "shares RAM" : `${g.vram_gib} GiB`;
      select.append(el("option", { value: g.name, text: `${g.name} (${size})` }));
    }
  } catch (e) {
    status(`Could not load the GPU catalog: ${e.message}`, true);
  }
}

function renderPick(rec) {
  const speed = rec.tokens_per_second === null ? "speed unknown" : `about ${Math.round(rec.tokens_per_second)} tokens/s`;
  const box = el("div", { class: "pick", id: "the-pick" },
    el("p", { class: "name", text: `${rec.display_name} · ${rec.quant} · ${tokens(rec.context)} context` }),
    el("p", { text: `${rec.runtime}, ${rec.placement.replace("_", " ")}; needs ${gib(rec.estimate.total_bytes)}; ${speed}` +
      (rec.max_context ? `; up to ${tokens(rec.max_context)} context fits` : "") }),
    el("ul", {}, ...rec.reasons.map((r) => el("li", { text: r }))));
  $("pick").replaceChildren(box);
}

function renderBars(rec) {
  const byDevice = new Map();
  for (const p of rec.estimate.parts) {
    const key = p.device === null ? "ram" : String(p.device);
    if (!byDevice.has(key)) byDevice.set(key, {});
    byDevice.get(key)[p.part] = (byDevice.get(key)[p.part] || 0) + p.bytes;
  }
  const out = [];
  for (const d of rec.fit.devices) {
    const key = d.device === null ? "ram" : String(d.device);
    const parts = byDevice.get(key) || {};
    const need = Object.values(parts).reduce((a, b) => a + b, 0);
    if (!need && d.device === null) continue;
    const scale = Math.max(d.budget_bytes, need) || 1;
    const name = d.device === null ? "RAM" : `GPU ${d.device}`;
    const bar = el("div", { class: "bar" + (need > d.budget_bytes ? " over" : ""), role: "img",
      "aria-label": `${name}: ${gib(need)} of ${gib(d.budget_bytes)} budget` });
    for (const part of PARTS) {
      if (!parts[part]) continue;
      bar.append(el("span", { style: `width:${(100 * parts[part] / scale).toFixed(2)}%;background:var(--${part})`,
        title: `${part.replace("_", " ")} ${gib(parts[part])}` }));
    }
    out.push(el("div", { class: "device" },
      el("div", { class: "label" }, el("strong", { text: name }),
        el("span", { class: need > d.budget_bytes ? "nofit" : "fits", text: `${gib(need)} of ${gib(d.budget_bytes)}` })),
      bar));
  }
  const legend = el("ul", { class: "legend" }, ...PARTS.map((p) =>
    el("li", {}, el("i", { style: `background:var(--${p})` }), p.replace("_", " "))));
  $("bars").replaceChildren(...out, legend);
}

function renderCurve(sweep) {
  const rows = sweep.rows;
  if (!rows.length) { $("curve").replaceChildren(); return; }
  const W = 640, H = 300, L = 56, R = 12, T = 12, B = 36;
  const xs = sweep.contexts, lx = (c) => Math.log2(c);
  const x0 = lx(xs[0]), x1 = lx(xs[xs.length - 1]) || x0 + 1;
  const budget = sweep.budget_bytes || 0;
  // The pool the model lands in, as the budget line is: GPU memory, or RAM without a GPU part.
  const need = (r) => r.gpu_bytes || r.ram_bytes;
  const ymax = Math.max(budget, ...rows.map(need)) * 1.05;
  const X = (c) => L + (W - L - R) * (x1 === x0 ? 0 : (lx(c) - x0) / (x1 - x0));
  const Y = (b) => T + (H - T - B) * (1 - b / ymax);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Memory of ${sweep.model} against context, one line per KV cache type`);
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#d0d7de" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#d0d7de" });
  for (const c of xs) add("text", { x: X(c), y: H - B + 16, "text-anchor": "middle" }, tokens(c));
  for (let i = 0; i <= 4; i++) {
    const b = ymax * i / 4;
    add("text", { x: L - 6, y: Y(b) + 4, "text-anchor": "end" }, (b / 2 ** 30).toFixed(0));
  }
  add("text", { x: 4, y: T + 8 }, "GiB");
  add("text", { x: W - R, y: H - 4, "text-anchor": "end" }, "context (tokens)");
  add("line", { x1: L, y1: Y(budget), x2: W - R, y2: Y(budget), stroke: "#b42318", "stroke-dasharray": "6 4" });
  add("text", { x: W - R, y: Y(budget) - 4, "text-anchor": "end" }, "budget");
  const kinds = [...new Set(rows.map((r) => r.kv_cache))];
  kinds.forEach((kv, i) => {
    const pts = rows.filter((r) => r.kv_cache === kv);
    const color = KV_COLORS[kv] || "#333";
    add("polyline", { points: pts.map((r) => `${X(r.context)},${Y(need(r))}`).join(" "),
      fill: "none", stroke: color, "stroke-width": 2 });
    for (const r of pts) add("circle", { cx: X(r.context), cy: Y(need(r)), r: 3, fill: r.fits ? color : "#fff", stroke: color });
    add("text", { x: L + 8 + i * 70, y: T + 10, style: `fill:${color};font-weight:600` }, `KV ${kv}`);
  });
  $("curve").replaceChildren(svg);
  $("curve-caption").textContent = `Memory of ${sweep.model} on the pool it lands in (${sweep.runtime}, ${sweep.quant}) at each context; ` +
    "filled dots fit the machine, hollow ones do not.";
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    const t = el("textarea", {}); t.value = text; document.body.append(t); t.select();
    document.execCommand("copy"); t.remove();
  }
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

function renderLaunch(launch) {
  const steps = launch.steps.map((s, i) => {
    const pre = el("pre", { id: `step-${i}` }, el("code", { text: s.shell }));
    const button = el("button", { type: "button", class: "copy", "aria-label": `Copy step ${i + 1}: ${s.purpose}`, text: "Copy" });
    button.addEventListener("click", () => copy(s.shell, button));
    return el("div", { class: "step" }, el("p", { text: `${i + 1}. ${s.purpose}` }), el("div", { class: "cmd" }, pre, button));
  });
  $("launch").replaceChildren(...steps, ...launch.notes.map((n) => el("p", { text: n })));
}

function renderAlternatives(recs) {
  const rows = recs.slice(1).map((r) => el("tr", {},
    el("td", { text: r.rank }), el("td", { text: r.display_name }), el("td", { text: r.quant }),
    el("td", { text: tokens(r.context) }), el("td", { text: r.placement.replace("_", " ") }),
    el("td", { text: gib(r.estimate.total_bytes) }),
    el("td", { text: r.tokens_per_second === null ? "-" : Math.round(r.tokens_per_second) })));
  $("alternatives").querySelector("tbody").replaceChildren(...rows);
  $("alternatives").closest(".scroll").previousElementSibling.hidden = rows.length === 0;
}

async function submit(event) {
  event.preventDefault();
  const go = $("go");
  go.disabled = true;
  status("Working…");
  const hw = hardware();
  const body = { ...hw, task: $("task").value, allow_offload: $("allow_offload").checked };
  if ($("runtime").value) body.runtime = $("runtime").value;
  if ($("context").value.trim()) body.context = $("context").value.trim();
  try {
    const result = (await api("/v1/recommend", body)).recommend;
    const recs = result.recommendations;
    $("notes").replaceChildren(...result.notes.map((n) => el("li", { text: n })));
    if (!recs.length) {
      $("result").hidden = true;
      $("nothing").hidden = false;
      const c = result.closest;
      $("closest").textContent = c ? JSON.stringify(c) : "No configuration comes close.";
      status("Nothing fits this machine.");
      return;
    }
    $("nothing").hidden = true;
    const best = recs[0];
    renderPick(best);
    const why = result.why_not_bigger || best.why_not_bigger;
    $("why-not-bigger").hidden = !why;
    $("why-not-bigger").textContent = why ? `Why not bigger: ${why}` : "";
    renderBars(best);
    renderLaunch(best.launch);
    renderAlternatives(recs);
    $("result").hidden = false;
    status(`Pick: ${best.display_name} ${best.quant}`);
    const sweep = await api("/v1/sweep", { ...hw, model: best.model, runtime: best.runtime, quant: best.quant,
      text_only: best.estimate.text_only, parallel: best.estimate.parallel,
      allow_offload: best.placement === "offload" || body.allow_offload });
    renderCurve(sweep.sweep);
  } catch (e) {
    status(`Error: ${e.message}`, true);
  } finally {
    go.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  loadGPUs();
  $("plan").addEventListener("submit", submit);
});
