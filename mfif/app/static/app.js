// mfif app: one page, no build step. The page holds previews (at most ~1600 px a side, 8-bit) and
// the crops it shows when zoomed in; full-resolution images stay on the server.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || "";

const S = {
  frames: [], results: [], methods: [], folder: null,
  mode: "side",
  shown: [],                       // item keys shown side by side: "frame:0", "result:r3"
  view: { cx: 0, cy: 0, scale: 1 }, // view space = frame pixels; scale = screen px per image px
  fitted: false,                   // false: fit the view when panes change (until the user zooms or pans)
  images: {},                      // key -> {img, url}
  hires: {},                       // key -> {img, x, y, w, h, sig}
  brushFrame: 0,
  job: null,
};
// Timings the latency benchmark reads (ms): click -> first result drawn; stroke move -> preview drawn.
window.mfifStats = { fuseShownMs: null, strokePreviewMs: [], strokeServerMs: null, openMs: null };

// ---- server calls and errors ---------------------------------------------------------------

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}
$("error-close").onclick = () => { $("error").hidden = true; };

async function api(path, body, method) {
  const opts = { method: method || (body === undefined ? "GET" : "POST"), headers: { "X-Mfif-Token": TOKEN } };
  if (body instanceof FormData) opts.body = body;
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  let response;
  try { response = await fetch(path, opts); }
  catch (e) { throw new Error("the app's server does not answer (was it stopped?)"); }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { error: text.slice(0, 200) }; }
  if (!response.ok) throw new Error((data && data.error) || `request failed (${response.status})`);
  return data;
}

function guard(fn) {
  return async (...args) => {
    try { return await fn(...args); }
    catch (e) { showError(e.message || String(e)); }
  };
}

function status(text) { $("status").textContent = text; }

// ---- items (frames and results) -------------------------------------------------------------

function itemInfo(key) {
  const [kind, id] = key.split(":");
  if (kind === "frame") {
    const f = S.frames[+id];
    if (!f) return null;
    return { kind, id, w: f.width, h: f.height, offX: 0, offY: 0, pscale: f.preview_scale, label: f.name,
             url: `/api/preview/frame/${id}?fmt=jpg`, version: 0 };
  }
  const r = S.results.find((x) => x.id === id);
  if (!r) return null;
  return { kind, id, w: r.width, h: r.height, offX: r.crop[0], offY: r.crop[1], pscale: r.preview_scale,
           label: `${r.method}` + (r.provisional ? " (preview; full resolution coming)" : "") +
             (r.strokes ? ` (${plural(r.strokes, "stroke")})` : ""), hasMap: r.has_map,
           url: `/api/preview/result/${id}?v=${r.version}`, version: r.version };
}

let pendingLoads = 0;
function loadImage(url) {
  pendingLoads++;
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => { pendingLoads--; resolve(img); };
    img.onerror = () => { pendingLoads--; reject(new Error(`could not load ${url.split("?")[0]}`)); };
    img.src = url;
  });
}
// for tests and benchmarks: nothing loading, no zoom crop waiting to be fetched
window.mfifIdle = () => pendingLoads === 0 && hiresTimer === null && hiresWanted.size === 0;

// Preview image of an item (cached by URL); calls render when it arrives.
function previewOf(key, url) {
  const entry = S.images[key];
  if (entry && entry.url === url) return entry.img;
  if (!entry || entry.pending !== url) {
    S.images[key] = { img: entry ? entry.img : null, url: entry ? entry.url : null, pending: url };
    loadImage(url).then((img) => {
      S.images[key] = { img, url };
      render();
    }).catch((e) => showError(e.message));
  }
  return entry ? entry.img : null;
}

// ---- drawing ---------------------------------------------------------------------------------

function panes() { return Array.from(document.querySelectorAll("#panes canvas")); }

function sizeCanvas(canvas) {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
}

function toScreen(canvas, x, y) {
  const v = S.view;
  return [(x - v.cx) * v.scale + canvas.width / 2, (y - v.cy) * v.scale + canvas.height / 2];
}
function toView(canvas, sx, sy) {
  const v = S.view;
  return [(sx - canvas.width / 2) / v.scale + v.cx, (sy - canvas.height / 2) / v.scale + v.cy];
}

function drawItem(ctx, canvas, key) {
  const info = itemInfo(key);
  if (!info) return;
  const img = previewOf(key, info.url);
  const [dx, dy] = toScreen(canvas, info.offX, info.offY);
  const dw = info.w * S.view.scale, dh = info.h * S.view.scale;
  ctx.imageSmoothingEnabled = S.view.scale < 1;
  if (img) ctx.drawImage(img, dx, dy, dw, dh);
  const hi = S.hires[key];
  if (hi && hi.version === info.version && hi.scale === S.view.scale) {
    const [hx, hy] = toScreen(canvas, info.offX + hi.x, info.offY + hi.y);
    ctx.drawImage(hi.img, hx, hy, hi.w * S.view.scale, hi.h * S.view.scale);
  }
  if ($("overlay").checked && info.kind === "result" && info.hasMap) {
    const map = previewOf("map:" + info.id, `/api/preview/map/${info.id}`);
    if (map) {
      ctx.globalAlpha = $("overlay-opacity").value / 100;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(map, dx, dy, dw, dh);
      ctx.globalAlpha = 1;
    }
  }
  if (S.view.scale > info.pscale * 1.02) scheduleHires(canvas, key, info);
}

let hiresTimer = null;
const hiresWanted = new Map();
function scheduleHires(canvas, key, info) {
  hiresWanted.set(key, { canvas, info });
  clearTimeout(hiresTimer);
  hiresTimer = setTimeout(fetchHires, 120);
}

function fetchHires() {
  hiresTimer = null;
  const wanted = Array.from(hiresWanted.entries());
  hiresWanted.clear();
  for (const [key, { canvas, info }] of wanted) {
    const v = S.view;
    const [x0v, y0v] = toView(canvas, 0, 0), [x1v, y1v] = toView(canvas, canvas.width, canvas.height);
    const x = Math.max(0, Math.floor(x0v - info.offX)), y = Math.max(0, Math.floor(y0v - info.offY));
    const x1 = Math.min(info.w, Math.ceil(x1v - info.offX)), y1 = Math.min(info.h, Math.ceil(y1v - info.offY));
    if (x1 <= x || y1 <= y) continue;
    const w = x1 - x, h = y1 - y;
    const ow = Math.max(1, Math.round(w * v.scale)), oh = Math.max(1, Math.round(h * v.scale));
    const cur = S.hires[key];
    const scale = v.scale;
    if (cur && cur.version === info.version && cur.scale === scale && cur.x <= x && cur.y <= y &&
        cur.x + cur.w >= x1 && cur.y + cur.h >= y1) continue;
    const capW = Math.min(ow, 4096), capH = Math.min(oh, 4096);
    const url = `/api/view/${info.kind}/${info.id}?x=${x}&y=${y}&w=${w}&h=${h}&ow=${capW}&oh=${capH}&v=${info.version}`;
    loadImage(url).then((img) => {
      S.hires[key] = { img, x, y, w, h, scale, version: info.version };
      render();
    }).catch((e) => showError(e.message));
  }
}

function render() {
  const cs = panes();
  for (const canvas of cs) {
    sizeCanvas(canvas);
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (S.mode === "compare") {
      const a = $("compare-a").value, b = $("compare-b").value;
      if (b) drawItem(ctx, canvas, b);
      if (a) {
        const cut = Math.round(canvas.width * $("slider").value / 100);
        ctx.save();
        ctx.beginPath(); ctx.rect(0, 0, cut, canvas.height); ctx.clip();
        ctx.fillStyle = "#111"; ctx.fillRect(0, 0, cut, canvas.height);
        drawItem(ctx, canvas, a);
        ctx.restore();
        ctx.fillStyle = "#fff"; ctx.fillRect(cut - 1, 0, 2, canvas.height);
      }
    } else if (canvas.dataset.key) {
      drawItem(ctx, canvas, canvas.dataset.key);
      if (S.mode === "retouch" && paint.active) drawPaint(ctx, canvas);
      if (S.mode === "retouch" && paint.cursor) drawCursor(ctx);
    }
  }
  const pct = Math.round(S.view.scale * 1000) / 10;
  $("zoom-label").textContent = `${pct} %`;
}

// ---- panes and views -------------------------------------------------------------------------

function buildPanes() {
  const box = $("panes");
  box.innerHTML = "";
  let keys;
  if (S.mode === "compare") keys = ["compare"];
  else if (S.mode === "retouch") keys = $("retouch-result").value ? ["result:" + $("retouch-result").value] : [];
  else keys = S.shown.filter((k) => itemInfo(k));
  if (!keys.length) {
    box.innerHTML = `<div class="empty">${S.frames.length ? "choose frames or results to show" : "open a folder or drop frames"}</div>`;
    return;
  }
  for (const key of keys) {
    const pane = document.createElement("div");
    pane.className = "pane" + (S.mode === "retouch" ? " retouch" : "");
    const canvas = document.createElement("canvas");
    canvas.dataset.key = key === "compare" ? "" : key;
    pane.appendChild(canvas);
    if (key === "compare") {
      const la = document.createElement("div"), lb = document.createElement("div");
      la.className = "label"; lb.className = "label right";
      la.textContent = labelOf($("compare-a").value); lb.textContent = labelOf($("compare-b").value);
      pane.append(la, lb);
    } else {
      const label = document.createElement("div");
      label.className = "label";
      label.textContent = labelOf(key);
      pane.appendChild(label);
    }
    box.appendChild(pane);
    attachPointer(canvas);
  }
  if (!S.fitted) { fit(); S.fitted = false; }
  render();
}

function labelOf(key) { const i = key && itemInfo(key); return i ? i.label : ""; }

function firstItem() {
  if (S.mode === "compare") return $("compare-b").value || $("compare-a").value;
  if (S.mode === "retouch") return $("retouch-result").value ? "result:" + $("retouch-result").value : null;
  return S.shown[0] || (S.frames.length ? "frame:0" : null);
}

function fit() {
  const key = firstItem(), canvas = panes()[0];
  if (!key || !canvas) return;
  const info = itemInfo(key);
  if (!info) return;
  sizeCanvas(canvas);
  S.view.scale = Math.min(canvas.width / info.w, canvas.height / info.h) * 0.98;
  S.view.cx = info.offX + info.w / 2;
  S.view.cy = info.offY + info.h / 2;
  S.fitted = true;
  render();
}

function zoomAt(canvas, factor, sx, sy) {
  S.fitted = true;
  const [x, y] = toView(canvas, sx, sy);
  S.view.scale = Math.min(32, Math.max(0.01, S.view.scale * factor));
  S.view.cx = x - (sx - canvas.width / 2) / S.view.scale;
  S.view.cy = y - (sy - canvas.height / 2) / S.view.scale;
  render();
}

$("zoom-fit").onclick = () => { fit(); S.fitted = false; };
$("zoom-1").onclick = () => { S.view.scale = 1; S.fitted = true; render(); };
$("zoom-in").onclick = () => { const c = panes()[0]; if (c) zoomAt(c, 1.5, c.width / 2, c.height / 2); };
$("zoom-out").onclick = () => { const c = panes()[0]; if (c) zoomAt(c, 1 / 1.5, c.width / 2, c.height / 2); };
$("overlay").onchange = render;
$("overlay-opacity").oninput = render;
$("slider").oninput = render;
window.addEventListener("resize", render);

// ---- pointer: pan, zoom, paint ---------------------------------------------------------------

const paint = { active: false, points: [], layer: null, mask: null, cursor: null, source: null };

function attachPointer(canvas) {
  let drag = null;
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoomAt(canvas, e.deltaY < 0 ? 1.25 : 0.8, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    const r = canvas.getBoundingClientRect();
    const sx = e.clientX - r.left, sy = e.clientY - r.top;
    if (S.mode === "retouch" && e.button === 0 && !e.shiftKey) startStroke(canvas, sx, sy, e);
    else drag = { sx, sy, cx: S.view.cx, cy: S.view.cy };
  });
  canvas.addEventListener("pointermove", (e) => {
    const r = canvas.getBoundingClientRect();
    const sx = e.clientX - r.left, sy = e.clientY - r.top;
    if (drag) {
      S.fitted = true;
      S.view.cx = drag.cx - (sx - drag.sx) / S.view.scale;
      S.view.cy = drag.cy - (sy - drag.sy) / S.view.scale;
      render();
    } else if (S.mode === "retouch") {
      paint.cursor = { sx, sy };
      if (paint.active) extendStroke(canvas, sx, sy, e);
      else render();
    }
  });
  const end = (e) => {
    drag = null;
    if (paint.active) finishStroke(canvas);
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("pointerleave", () => { paint.cursor = null; if (!paint.active) render(); });
}

function brush() {
  return { radius: +$("brush-size").value, softness: $("brush-soft").value / 100 };
}

function currentResult() {
  const id = $("retouch-result").value;
  return S.results.find((r) => r.id === id);
}

function startStroke(canvas, sx, sy, e) {
  const r = currentResult();
  if (!r) { showError("choose a result to retouch"); return; }
  const frame = +$("brush-frame").value;
  const src = previewOf(`aligned:${r.id}:${frame}`, `/api/preview/aligned/${r.id}:${frame}?fmt=jpg`);
  if (!src) { showError("the source frame's preview is still loading; try again in a moment"); return; }
  paint.active = true;
  paint.points = [];
  paint.source = src;
  paint.result = r;
  paint.frame = frame;
  paint.layer = document.createElement("canvas");
  paint.mask = document.createElement("canvas");
  for (const c of [paint.layer, paint.mask]) { c.width = canvas.width; c.height = canvas.height; }
  extendStroke(canvas, sx, sy, e);
}

// Add a point and draw the live preview: the source frame's preview seen through the brush.
function extendStroke(canvas, sx, sy, e) {
  const r = paint.result;
  const [vx, vy] = toView(canvas, sx, sy);
  const p = [vx - r.crop[0], vy - r.crop[1]]; // result pixels
  const last = paint.points[paint.points.length - 1];
  paint.points.push(p);
  const b = brush(), rad = b.radius * S.view.scale;
  const mctx = paint.mask.getContext("2d");
  const from = last ? toScreen(canvas, last[0] + r.crop[0], last[1] + r.crop[1]) : [sx, sy];
  const dist = Math.hypot(sx - from[0], sy - from[1]);
  const steps = Math.max(1, Math.ceil(dist / Math.max(1, rad / 4)));
  for (let k = last ? 1 : 0; k <= steps; k++) {
    const x = from[0] + (sx - from[0]) * k / steps, y = from[1] + (sy - from[1]) * k / steps;
    const g = mctx.createRadialGradient(x, y, rad * (1 - b.softness), x, y, Math.max(rad, 0.5));
    g.addColorStop(0, "rgba(255,255,255,1)");
    g.addColorStop(1, "rgba(255,255,255,0)");
    mctx.fillStyle = g;
    mctx.beginPath(); mctx.arc(x, y, Math.max(rad, 0.5), 0, 2 * Math.PI); mctx.fill();
  }
  paint.cursor = { sx, sy };
  render();
  const t = e && e.timeStamp;
  if (t) requestAnimationFrame(() => {
    window.mfifStats.strokePreviewMs.push(performance.now() - t);
    if (window.mfifStats.strokePreviewMs.length > 200) window.mfifStats.strokePreviewMs.shift();
  });
}

function drawPaint(ctx, canvas) {
  const r = paint.result;
  const lctx = paint.layer.getContext("2d");
  lctx.globalCompositeOperation = "source-over";
  lctx.clearRect(0, 0, paint.layer.width, paint.layer.height);
  const [dx, dy] = toScreen(canvas, r.crop[0], r.crop[1]);
  lctx.imageSmoothingEnabled = S.view.scale < 1;
  lctx.drawImage(paint.source, dx, dy, r.width * S.view.scale, r.height * S.view.scale);
  lctx.globalCompositeOperation = "destination-in";
  lctx.drawImage(paint.mask, 0, 0);
  ctx.drawImage(paint.layer, 0, 0);
}

function drawCursor(ctx) {
  const rad = brush().radius * S.view.scale;
  ctx.strokeStyle = "rgba(255,255,255,.8)";
  ctx.lineWidth = 1;
  ctx.beginPath(); ctx.arc(paint.cursor.sx, paint.cursor.sy, Math.max(rad, 1), 0, 2 * Math.PI); ctx.stroke();
}

const finishStroke = guard(async (canvas) => {
  const r = paint.result, points = paint.points.map(([x, y]) => [Math.round(x * 100) / 100, Math.round(y * 100) / 100]);
  const b = brush();
  paint.active = false;
  const t0 = performance.now();
  try {
    const updated = await api(`/api/result/${r.id}/stroke`, { frame: paint.frame, points, radius: b.radius, softness: b.softness });
    await updateResult(updated);
    window.mfifStats.strokeServerMs = performance.now() - t0;
  } finally {
    paint.layer = paint.mask = null;
    render();
  }
});

async function updateResult(desc) {
  const i = S.results.findIndex((x) => x.id === desc.id);
  if (i >= 0) S.results[i] = { ...S.results[i], ...desc };
  else S.results.push(desc);
  const info = itemInfo("result:" + desc.id);
  // wait for the new preview so the page never shows the old pixels as the new state
  const img = await loadImage(info.url);
  S.images["result:" + desc.id] = { img, url: info.url };
  refreshResults();
  render();
}

$("undo").onclick = guard(async () => { const r = currentResult(); if (r) await updateResult(await api(`/api/result/${r.id}/undo`, {})); });
$("redo").onclick = guard(async () => { const r = currentResult(); if (r) await updateResult(await api(`/api/result/${r.id}/redo`, {})); });
$("brush-size").oninput = () => { $("brush-size-label").textContent = $("brush-size").value; render(); };
$("load-strokes").onchange = guard(async (e) => {
  const file = e.target.files[0], r = currentResult();
  e.target.value = "";
  if (!file || !r) return;
  let data;
  try { data = JSON.parse(await file.text()); } catch (err) { throw new Error(`${file.name} is not a strokes JSON file`); }
  await updateResult(await api(`/api/result/${r.id}/strokes`, data));
});
document.addEventListener("keydown", (e) => {
  if (S.mode !== "retouch" || !(e.ctrlKey || e.metaKey)) return;
  if (e.key === "z" && !e.shiftKey) { e.preventDefault(); $("undo").click(); }
  if (e.key === "y" || (e.key === "z" && e.shiftKey)) { e.preventDefault(); $("redo").click(); }
});

// ---- modes -----------------------------------------------------------------------------------

function setMode(mode) {
  S.mode = mode;
  for (const b of document.querySelectorAll(".mode")) b.classList.toggle("active", b.dataset.mode === mode);
  $("compare-bar").hidden = mode !== "compare";
  $("retouch-bar").hidden = mode !== "retouch";
  refreshThumbs();
  buildPanes();
  if (mode === "retouch") warmBrushSource();
}
for (const b of document.querySelectorAll(".mode")) b.onclick = () => setMode(b.dataset.mode);
$("compare-a").onchange = $("compare-b").onchange = () => buildPanes();
$("retouch-result").onchange = () => { refreshResults(); buildPanes(); warmBrushSource(); };
$("brush-frame").onchange = () => { S.brushFrame = +$("brush-frame").value; refreshThumbs(); warmBrushSource(); };

function warmBrushSource() {
  const r = currentResult();
  if (!r) return;
  const f = $("brush-frame").value;
  previewOf(`aligned:${r.id}:${f}`, `/api/preview/aligned/${r.id}:${f}?fmt=jpg`);
}

// ---- stack: folders, upload, thumbnails ------------------------------------------------------

function applyStack(state) {
  S.frames = state.frames;
  S.results = state.results || [];
  S.images = {}; S.hires = {};
  S.shown = S.frames.length ? ["frame:0"] : [];
  S.fitted = false;
  $("run").disabled = S.frames.length < 2;
  const where = state.folder === "." ? state.root : state.folder;
  status(state.folder === null ? "no stack open" :
    `${where}: ${S.frames.length} frames, ${S.frames[0] ? S.frames[0].width + "×" + S.frames[0].height : ""}`);
  refreshThumbs(); refreshResults(); buildPanes();
}

function refreshThumbs() {
  const box = $("thumbs");
  box.innerHTML = "";
  const bf = $("brush-frame"), keep = bf.value;
  bf.innerHTML = "";
  S.frames.forEach((f, i) => {
    const d = document.createElement("div");
    d.className = "thumb" + (S.shown.includes("frame:" + i) ? " shown" : "") +
      (S.mode === "retouch" && +keep === i ? " brush" : "");
    d.dataset.index = i;
    d.title = `${f.name} (${f.width}×${f.height}, ${f.bit_depth}-bit)`;
    d.innerHTML = `<img alt="" src="/api/preview/frame/${i}?thumb=1&fmt=jpg"><span>${i}: ${escapeHtml(f.name)}</span>`;
    d.onclick = () => {
      if (S.mode === "retouch") { $("brush-frame").value = i; $("brush-frame").onchange(); return; }
      toggleShown("frame:" + i);
    };
    box.appendChild(d);
    const o = document.createElement("option");
    o.value = i; o.textContent = `${i}: ${f.name}`;
    bf.appendChild(o);
  });
  if (keep !== "" && +keep < S.frames.length) bf.value = keep;
  refreshCompareOptions();
}

function toggleShown(key) {
  const i = S.shown.indexOf(key);
  if (i >= 0) S.shown.splice(i, 1);
  else { S.shown.push(key); if (S.shown.length > 4) S.shown.shift(); }
  refreshThumbs(); refreshResults(); buildPanes();
}

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }
function escapeHtml(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }

function allItems() {
  return [...S.frames.map((f, i) => ["frame:" + i, `frame ${i}: ${f.name}`]),
          ...S.results.map((r) => ["result:" + r.id, `result: ${r.method}`])];
}

function refreshCompareOptions() {
  for (const [id, fallback] of [["compare-a", 0], ["compare-b", -1]]) {
    const sel = $(id), keep = sel.value;
    sel.innerHTML = "";
    const items = allItems();
    for (const [key, label] of items) {
      const o = document.createElement("option"); o.value = key; o.textContent = label; sel.appendChild(o);
    }
    if (items.some(([k]) => k === keep)) sel.value = keep;
    else if (items.length) sel.value = items[fallback < 0 ? items.length - 1 : 0][0];
  }
}

function refreshResults() {
  const box = $("results");
  box.innerHTML = S.results.length ? "" : '<span class="hint">none yet</span>';
  for (const sel of ["export-result", "retouch-result"]) {
    const el = $(sel), keep = el.value;
    el.innerHTML = "";
    for (const r of S.results) {
      const o = document.createElement("option"); o.value = r.id; o.textContent = `${r.method} (${r.id})`; el.appendChild(o);
    }
    if (S.results.some((r) => r.id === keep)) el.value = keep;
    else if (S.results.length) el.value = S.results[S.results.length - 1].id;
  }
  for (const r of S.results) {
    const d = document.createElement("div");
    d.className = "result" + (S.shown.includes("result:" + r.id) ? " shown" : "");
    d.dataset.id = r.id;
    const m = r.metrics || {};
    const metrics = Object.keys(m).length ? Object.entries(m).map(([k, v]) => `${k} ${v}`).join(" · ") : "metrics…";
    d.innerHTML = `<b>${escapeHtml(r.method)}</b> · ${r.width}×${r.height} · ` +
      (r.provisional ? "preview, full resolution coming…" : `${r.seconds} s`) +
      (r.strokes ? ` · ${plural(r.strokes, "stroke")}` : "") + `<div class="metrics">${metrics}</div>`;
    d.onclick = () => toggleShown("result:" + r.id);
    box.appendChild(d);
  }
  const r = currentResult();
  $("undo").disabled = !(r && r.can_undo);
  $("redo").disabled = !(r && r.can_redo);
  $("save-strokes").href = r ? `/api/result/${r.id}/strokes` : "#";
  const er = S.results.find((x) => x.id === $("export-result").value);
  if (er && !$("export-name").dataset.touched) $("export-name").value = `fused_${er.method}.${$("export-format").value}`;
  refreshCompareOptions();
}
$("export-name").oninput = () => { $("export-name").dataset.touched = "1"; };
$("export-format").onchange = () => {
  const name = $("export-name").value, ext = $("export-format").value;
  $("export-name").value = name.replace(/\.(tif|tiff|png|jpg|jpeg)$/i, "") + "." + ext;
  if (ext === "jpg") $("export-bits").value = "8";
};
$("export-result").onchange = () => { delete $("export-name").dataset.touched; refreshResults(); };

$("open").onclick = guard(async () => {
  const t0 = performance.now();
  status("opening…");
  applyStack(await api("/api/open", { path: $("folder").value }));
  await waitForPreviews();
  window.mfifStats.openMs = performance.now() - t0;
});

// resolves when the first shown preview is drawn (what "opens and previews" means)
async function waitForPreviews() {
  const key = firstItem();
  if (!key) return;
  const info = itemInfo(key);
  const img = await loadImage(info.url);
  S.images[key] = { img, url: info.url };
  render();
}

const drop = $("drop");
document.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
document.addEventListener("dragleave", () => drop.classList.remove("over"));
document.addEventListener("drop", guard(async (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const files = Array.from(e.dataTransfer.files || []);
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  status(`uploading ${files.length} files…`);
  applyStack(await api("/api/upload", form));
}));

// ---- fusion ----------------------------------------------------------------------------------

function buildMethods() {
  const box = $("methods");
  box.innerHTML = "";
  for (const m of S.methods) {
    const d = document.createElement("div");
    d.className = "method" + (m.unavailable ? " unavailable" : "");
    d.title = m.unavailable ? `unavailable: ${m.unavailable}` : m.summary;
    const opts = m.options.map((o) => {
      const input = o.type === "bool"
        ? `<input type="checkbox" data-opt="${o.name}" ${o.default ? "checked" : ""}>`
        : `<input data-opt="${o.name}" data-type="${o.type}" value="${o.default === null ? "" : escapeHtml(o.default)}">`;
      return `<label class="opt">${o.name} ${input}</label>`;
    }).join("");
    d.innerHTML = `<label><input type="checkbox" data-method="${m.name}" ${m.default ? "checked" : ""} ${m.unavailable ? "disabled" : ""}> ${m.name}</label>` +
      (opts ? `<details><summary>options</summary>${opts}</details>` : "");
    box.appendChild(d);
  }
}

function chosenOptions() {
  const out = {};
  for (const d of document.querySelectorAll("#methods .method")) {
    const name = d.querySelector("[data-method]").dataset.method;
    const m = S.methods.find((x) => x.name === name);
    const opts = {};
    for (const input of d.querySelectorAll("[data-opt]")) {
      const o = m.options.find((x) => x.name === input.dataset.opt);
      const value = input.type === "checkbox" ? input.checked : input.value;
      if (String(value) !== String(o.default === null ? "" : o.default)) opts[o.name] = value;
    }
    if (Object.keys(opts).length) out[name] = opts;
  }
  return out;
}

$("run").onclick = guard(async () => {
  const methods = Array.from(document.querySelectorAll("#methods [data-method]:checked")).map((i) => i.dataset.method);
  if (!methods.length) throw new Error("choose at least one method");
  const t0 = performance.now();
  $("run").disabled = true;
  $("progress").value = 0;
  $("error").hidden = true;
  const alignBox = $("align");
  const body = { methods, options: chosenOptions(), align: alignBox.indeterminate ? null : alignBox.checked };
  let job;
  try { job = await api("/api/fuse", body); }
  catch (e) { $("run").disabled = false; throw e; }
  listen(job.job, t0);
});

function listen(jobId, t0) {
  const source = new EventSource(`/api/jobs/${jobId}/events`);
  let first = true;
  const close = () => { source.close(); $("run").disabled = false; };
  source.addEventListener("progress", (e) => {
    const d = JSON.parse(e.data);
    $("progress").value = d.fraction;
    $("progress-text").textContent = d.message;
  });
  source.addEventListener("warning", (e) => { $("progress-text").textContent = "warning: " + JSON.parse(e.data).message; });
  source.addEventListener("result", guard(async (e) => {
    const r = JSON.parse(e.data).result;
    const key = "result:" + r.id;
    if (!S.shown.includes(key)) { S.shown.push(key); if (S.shown.length > 4) S.shown.shift(); }
    if (S.mode === "compare") { refreshCompareOptions(); $("compare-b").value = key; }
    await updateResult(r);
    buildPanes();
    if (first) { first = false; window.mfifStats.fuseShownMs = performance.now() - t0; }
  }));
  source.addEventListener("metrics", (e) => {
    const r = JSON.parse(e.data).result;
    const i = S.results.findIndex((x) => x.id === r.id);
    if (i >= 0) { S.results[i].metrics = r.metrics; refreshResults(); }
  });
  source.addEventListener("failed", (e) => { showError(JSON.parse(e.data).message); close(); });
  source.onerror = () => { showError("lost the connection to the server while fusing"); close(); };
  source.addEventListener("done", () => { $("progress-text").textContent = "done"; close(); });
}

// ---- export ----------------------------------------------------------------------------------

$("export").onclick = guard(async () => {
  const rid = $("export-result").value;
  if (!rid) throw new Error("fuse something first");
  const out = await api("/api/export", { result: rid, name: $("export-name").value.trim(), bit_depth: +$("export-bits").value });
  $("export-msg").textContent = `wrote ${out.name} (${(out.bytes / 1e6).toFixed(2)} MB) in the opened folder`;
});

// ---- start -----------------------------------------------------------------------------------

guard(async () => {
  const state = await api("/api/state");
  S.methods = state.methods;
  buildMethods();
  $("align").indeterminate = true;
  $("align").onchange = () => { $("align").indeterminate = false; };
  const sel = $("folder");
  sel.innerHTML = "";
  for (const f of state.folders) {
    const o = document.createElement("option");
    o.value = f.path; o.textContent = `${f.path === "." ? state.root : f.path} (${f.frames})`;
    sel.appendChild(o);
  }
  if (!state.folders.length) sel.innerHTML = "<option value=\".\">(no images here)</option>";
  applyStack(state);
  if (state.folder === null) status(`${state.root}: choose a folder and Open, or drop frames`);
  document.body.dataset.ready = "1";
})();
