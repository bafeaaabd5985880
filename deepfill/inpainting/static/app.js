// The painting page: open a picture, paint the hole on a mask layer at the picture's own resolution, send
// both to /api/inpaint, show the result (which becomes the picture for the next fill), its attention-flow
// picture, and every problem as text.
"use strict";

const $ = (id) => document.getElementById(id);
const pictureCanvas = $("picture");
const maskCanvas = $("mask");
const pictureCtx = pictureCanvas.getContext("2d");
const maskCtx = maskCanvas.getContext("2d", { willReadFrequently: true });
const HISTORY_BYTES = 200e6;   // undo snapshots are whole mask layers; keep their memory bounded

const state = {
  picture: null,   // { blob, name, bitmap, width, height }: what the next fill starts from
  before: null,    // the picture before the last fill, for comparing
  undo: [], redo: [], eraser: false, busy: false, last: null, resultUrl: null, flowUrl: null,
  autoCropSide: 1024,   // from /api/model: four times the model's training side
};

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function setStatus(text) { $("status").textContent = text; }

function brushSize() { return Number($("brush").value); }

function setBrushSize(size) {
  $("brush").value = Math.round(Math.min(Math.max(size, 2), 200));
  $("brush-size").textContent = $("brush").value;
  updateCursorSize();
}

function stem(name) { return (name || "picture").replace(/\.[^.]*$/, ""); }

async function decode(blob, what) {
  try {
    return await createImageBitmap(blob);
  } catch (error) {
    throw new Error(`The browser cannot show this ${what} (${blob.type || "unknown type"}); use PNG or JPEG.`);
  }
}

// ---- the picture ------------------------------------------------------------------------------------

async function openPicture(blob, name) {
  if (state.busy) return;
  showError("");
  const bitmap = await decode(blob, "picture");
  state.picture = { blob, name: name || "pasted.png", bitmap, width: bitmap.width, height: bitmap.height };
  state.before = null;
  pictureCanvas.width = maskCanvas.width = bitmap.width;
  pictureCanvas.height = maskCanvas.height = bitmap.height;
  drawPicture(state.picture);
  clearMask(false);
  state.undo = []; state.redo = [];
  setResult(null, null);
  $("empty").hidden = true;
  $("canvases").hidden = false;
  showTab("picture");
  fit();
  document.body.dataset.state = "ready";
  const side = state.autoCropSide;
  const hint = Math.max(bitmap.width, bitmap.height) > side ? ` (over ${side} px: auto mode fills around each hole)` : "";
  setStatus(`${state.picture.name}: ${bitmap.width}×${bitmap.height}${hint}. Paint over what should disappear.`);
  updateButtons();
}

// Show the picture as large as the stage allows (small ones up to 4×, for painting), the flow view alike.
function fit() {
  if (!state.picture) return;
  const stage = $("stage").getBoundingClientRect();
  const { width, height } = state.picture;
  const size = (element, room) => {
    const scale = Math.min((stage.width - 24) / width, (stage.height - room) / height, 4);
    element.style.width = `${Math.max(Math.floor(width * scale), 1)}px`;
    element.style.height = `${Math.max(Math.floor(height * scale), 1)}px`;
  };
  size(pictureCanvas, 24);
  size($("flow"), 80);   // room for the caption
}

function drawPicture(picture) {
  pictureCtx.clearRect(0, 0, pictureCanvas.width, pictureCanvas.height);
  pictureCtx.drawImage(picture.bitmap, 0, 0);
}

function setResult(blob, flowBlob) {
  for (const url of [state.resultUrl, state.flowUrl]) if (url) URL.revokeObjectURL(url);
  state.resultUrl = blob ? URL.createObjectURL(blob) : null;
  state.flowUrl = flowBlob ? URL.createObjectURL(flowBlob) : null;
  const link = $("download");
  if (state.resultUrl) {
    link.href = state.resultUrl;
    link.download = `${stem(state.picture.name)}_filled.png`;
  } else {
    link.removeAttribute("href");
  }
  link.classList.toggle("disabled", !state.resultUrl);
  $("flow").src = state.flowUrl || "";
  $("tab-flow").disabled = !state.flowUrl;
}

// ---- the mask layer ---------------------------------------------------------------------------------

function snapshotBytes() { return maskCanvas.width * maskCanvas.height * 4; }

function pushUndo() {
  state.undo.push(maskCtx.getImageData(0, 0, maskCanvas.width, maskCanvas.height));
  const keep = Math.max(2, Math.floor(HISTORY_BYTES / snapshotBytes()));
  while (state.undo.length > keep) state.undo.shift();
  state.redo = [];
  updateButtons();
}

function undo() {
  if (!state.undo.length) return;
  state.redo.push(maskCtx.getImageData(0, 0, maskCanvas.width, maskCanvas.height));
  maskCtx.putImageData(state.undo.pop(), 0, 0);
  updateButtons();
}

function redo() {
  if (!state.redo.length) return;
  state.undo.push(maskCtx.getImageData(0, 0, maskCanvas.width, maskCanvas.height));
  maskCtx.putImageData(state.redo.pop(), 0, 0);
  updateButtons();
}

function clearMask(remember = true) {
  if (remember) pushUndo();
  maskCtx.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
  updateButtons();
}

function toImage(event) {
  const rect = maskCanvas.getBoundingClientRect();
  const scale = maskCanvas.width / rect.width;
  return { x: (event.clientX - rect.left) * scale, y: (event.clientY - rect.top) * scale, scale };
}

function paint(from, to) {
  maskCtx.save();
  maskCtx.globalCompositeOperation = state.eraser ? "destination-out" : "source-over";
  maskCtx.strokeStyle = maskCtx.fillStyle = "#ff0000";
  maskCtx.lineCap = maskCtx.lineJoin = "round";
  maskCtx.lineWidth = brushSize() * to.scale;
  maskCtx.beginPath();
  if (from) {
    maskCtx.moveTo(from.x, from.y);
    maskCtx.lineTo(to.x, to.y);
    maskCtx.stroke();
  } else {
    maskCtx.arc(to.x, to.y, maskCtx.lineWidth / 2, 0, 2 * Math.PI);
    maskCtx.fill();
  }
  maskCtx.restore();
}

maskCanvas.addEventListener("pointerdown", (event) => {
  if (state.busy || event.button !== 0) return;
  maskCanvas.setPointerCapture(event.pointerId);
  pushUndo();
  state.last = toImage(event);
  paint(null, state.last);
});
maskCanvas.addEventListener("pointermove", (event) => {
  moveCursor(event);
  if (!state.last) return;
  const point = toImage(event);
  paint(state.last, point);
  state.last = point;
});
for (const name of ["pointerup", "pointercancel"]) {
  maskCanvas.addEventListener(name, () => { state.last = null; updateButtons(); });
}
maskCanvas.addEventListener("pointerleave", () => { $("cursor").style.display = "none"; });

function moveCursor(event) {
  const box = $("canvases").getBoundingClientRect();
  const cursor = $("cursor");
  cursor.style.display = "block";
  cursor.style.left = `${event.clientX - box.left}px`;
  cursor.style.top = `${event.clientY - box.top}px`;
  updateCursorSize();
}

function updateCursorSize() {
  const cursor = $("cursor");
  cursor.style.width = cursor.style.height = `${brushSize()}px`;
  cursor.style.borderStyle = state.eraser ? "dashed" : "solid";
}

function setEraser(on) {
  state.eraser = on;
  $("eraser").setAttribute("aria-pressed", String(on));
  updateCursorSize();
}

async function openMask(blob) {
  if (!state.picture) throw new Error("Open a picture before its mask.");
  const bitmap = await decode(blob, "mask");
  const { width, height } = state.picture;
  if (bitmap.width !== width || bitmap.height !== height) {
    throw new Error(`The mask is ${bitmap.width}×${bitmap.height} but the picture is ${width}×${height}; ` +
      "they must have the same size.");
  }
  const scratch = new OffscreenCanvas(width, height).getContext("2d", { willReadFrequently: true });
  scratch.drawImage(bitmap, 0, 0);
  const source = scratch.getImageData(0, 0, width, height).data;
  const layer = maskCtx.createImageData(width, height);
  for (let i = 0; i < source.length; i += 4) {
    if (Math.max(source[i], source[i + 1], source[i + 2]) > 127 && source[i + 3] > 127) {
      layer.data[i] = 255; layer.data[i + 3] = 255;
    }
  }
  pushUndo();
  maskCtx.putImageData(layer, 0, 0);
  showError("");
  updateButtons();
}

// The hole as the API wants it: white where anything is painted, black elsewhere; null when nothing is.
async function maskBlob() {
  const { width, height } = maskCanvas;
  const painted = maskCtx.getImageData(0, 0, width, height).data;
  const out = new ImageData(width, height);
  let any = false;
  for (let i = 0; i < painted.length; i += 4) {
    const value = painted[i + 3] > 0 ? 255 : 0;
    any = any || value > 0;
    out.data[i] = out.data[i + 1] = out.data[i + 2] = value;
    out.data[i + 3] = 255;
  }
  if (!any) return null;
  const canvas = new OffscreenCanvas(width, height);
  canvas.getContext("2d").putImageData(out, 0, 0);
  return canvas.convertToBlob({ type: "image/png" });
}

// ---- filling ----------------------------------------------------------------------------------------

function base64Blob(text) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: "image/png" });
}

function setBusy(busy, label = "Filling…") {
  state.busy = busy;
  document.body.classList.toggle("busy", busy);
  $("stage").dataset.busyLabel = label;
  $("fill").textContent = busy ? label : "Fill";
  updateButtons();
}

async function fill() {
  if (state.busy) return;
  if (!state.picture) { showError("Open a picture first."); return; }
  // Say "filling" from the click on (before the mask is encoded), so that whoever waits for the fill's end
  // never mistakes the previous fill's "filled" for it.
  const previousState = document.body.dataset.state;
  document.body.dataset.state = "filling";
  const mask = await maskBlob();
  if (!mask) {
    document.body.dataset.state = previousState;
    showError("Paint over what should be filled first (or load a mask file).");
    return;
  }
  const form = new FormData();
  form.append("image", state.picture.blob, state.picture.name);
  form.append("mask", mask, "mask.png");
  form.append("flow", "true");
  form.append("hd_strategy", $("strategy").value);
  showError("");
  setBusy(true);
  document.body.dataset.state = "filling";
  const started = performance.now();
  const ticker = setInterval(() => setStatus(`Filling… ${((performance.now() - started) / 1000).toFixed(0)} s`), 500);
  try {
    let response;
    try {
      response = await fetch("/api/inpaint", { method: "POST", body: form });
    } catch (error) {
      throw new Error(`Cannot reach the server (${error.message}); is app.py still running?`);
    }
    let body = null;
    try { body = await response.json(); } catch (error) { /* not JSON: reported below */ }
    if (!response.ok || !body || !body.image) {
      const reason = body && body.error ? body.error : `${response.statusText || "no answer"}`;
      throw new Error(`The server did not fill it (HTTP ${response.status}): ${reason}`);
    }
    const result = base64Blob(body.image);
    const previous = state.picture;
    const bitmap = await decode(result, "result");
    state.before = previous;
    state.picture = { ...previous, blob: result, bitmap };
    drawPicture(state.picture);
    clearMask(false);
    state.undo = []; state.redo = [];
    setResult(result, base64Blob(body.flow));
    const seconds = (performance.now() - started) / 1000;
    setStatus(`Filled ${previous.width}×${previous.height} in ${seconds.toFixed(2)} s ` +
      `(${body.model}: ${body.seconds.toFixed(2)} s) · mode: ${body.hd_strategy}. Paint again to fill more.`);
    document.body.dataset.state = "filled";
    document.body.dataset.mode = body.hd_strategy;
  } catch (error) {
    showError(error.message);
    setStatus("");
    document.body.dataset.state = "error";
  } finally {
    clearInterval(ticker);
    setBusy(false);
  }
}

function compare(on) {
  if (!state.before) return;
  document.body.classList.toggle("comparing", on);
  drawPicture(on ? state.before : state.picture);
}

function showTab(name) {
  const flow = name === "flow" && state.flowUrl;
  $("tab-picture").setAttribute("aria-selected", String(!flow));
  $("tab-flow").setAttribute("aria-selected", String(Boolean(flow)));
  $("flow-view").hidden = !flow;
  $("canvases").hidden = Boolean(flow) || !state.picture;
  $("empty").hidden = Boolean(state.picture);
}

function updateButtons() {
  const ready = Boolean(state.picture) && !state.busy;
  for (const id of ["eraser", "clear", "fill"]) $(id).disabled = !ready;
  $("undo").disabled = !ready || !state.undo.length;
  $("redo").disabled = !ready || !state.redo.length;
  $("compare").disabled = !state.before || state.busy;
}

// ---- wiring -----------------------------------------------------------------------------------------

function reportErrors(promise) { Promise.resolve(promise).catch((error) => showError(error.message || String(error))); }

$("open").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) reportErrors(openPicture(file, file.name));
  event.target.value = "";
});
$("open-mask").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) reportErrors(openMask(file));
  event.target.value = "";
});
$("brush").addEventListener("input", () => setBrushSize(brushSize()));
$("eraser").addEventListener("click", () => setEraser(!state.eraser));
$("undo").addEventListener("click", undo);
$("redo").addEventListener("click", redo);
$("clear").addEventListener("click", () => clearMask());
$("fill").addEventListener("click", () => reportErrors(fill()));
$("tab-picture").addEventListener("click", () => showTab("picture"));
$("tab-flow").addEventListener("click", () => showTab("flow"));
const compareButton = $("compare");
compareButton.addEventListener("pointerdown", () => compare(true));
for (const name of ["pointerup", "pointerleave", "pointercancel"]) {
  compareButton.addEventListener(name, () => compare(false));
}

document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT" && event.target.type !== "range") return;
  const key = event.key.toLowerCase();
  if (event.key === "[") setBrushSize(brushSize() / 1.25);
  else if (event.key === "]") setBrushSize(brushSize() * 1.25);
  else if ((event.ctrlKey || event.metaKey) && (key === "y" || (key === "z" && event.shiftKey))) redo();
  else if ((event.ctrlKey || event.metaKey) && key === "z") undo();
  else if (key === "e" && !event.ctrlKey && !event.metaKey && state.picture) setEraser(!state.eraser);
  else if (key === "c" && !event.ctrlKey && !event.metaKey && !event.repeat) compare(true);
  else if (event.key === "Enter" && event.target.tagName !== "BUTTON") reportErrors(fill());
  else return;
  event.preventDefault();
});
document.addEventListener("keyup", (event) => { if (event.key.toLowerCase() === "c") compare(false); });

document.addEventListener("dragover", (event) => {
  event.preventDefault();
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  document.body.classList.remove("dragging");
  const file = [...event.dataTransfer.files].find((f) => f.type.startsWith("image/")) || event.dataTransfer.files[0];
  if (file) reportErrors(openPicture(file, file.name));
});
document.addEventListener("paste", (event) => {
  const item = [...event.clipboardData.items].find((i) => i.kind === "file" && i.type.startsWith("image/"));
  if (!item) return;
  event.preventDefault();
  const file = item.getAsFile();
  reportErrors(openPicture(file, file.name && file.name !== "image.png" ? file.name : "pasted.png"));
});
window.addEventListener("resize", fit);
window.addEventListener("error", (event) => showError(`The page failed: ${event.message}`));
window.addEventListener("unhandledrejection", (event) => showError(`The page failed: ${event.reason}`));

// ---- the model --------------------------------------------------------------------------------------

function showModel(model) {
  const holes = model.version === 1 ? " (made for rectangular holes; brush strokes suit a v2 model)" : "";
  $("title").textContent = `DeepFill v${model.version}`;
  $("model").textContent = `${model.name} · trained on ${model.trained_on}${holes} · ${model.device}`;
  $("model").title = `source: ${model.source}`;
  document.body.dataset.model = model.name;
  state.autoCropSide = model.auto_crop_side;
  const auto = `crop for pictures over ${model.auto_crop_side} px on a side, else full`;
  $("strategy").title = `How big pictures are filled: auto = ${auto}`;
  $("strategy").querySelector('option[value="auto"]').title = auto;
  const menu = $("model-menu");
  menu.replaceChildren(...model.models.map((name) => new Option(name, name, false, name === model.name)));
  menu.hidden = model.models.length < 2;
}

async function answerOf(response, what) {
  let body = null;
  try { body = await response.json(); } catch (error) { /* not JSON: reported below */ }
  if (!response.ok || !body) {
    const reason = body && body.error ? body.error : `${response.statusText || "no answer"}`;
    throw new Error(`${what} (HTTP ${response.status}): ${reason}`);
  }
  return body;
}

async function switchModel(name) {
  if (state.busy) return;
  showError("");
  setBusy(true, `Loading ${name}…`);
  $("model-menu").disabled = true;
  setStatus(`Loading ${name}…`);
  try {
    let response;
    try {
      response = await fetch("/api/model", { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify({ name }) });
    } catch (error) {
      throw new Error(`Cannot reach the server (${error.message}); is app.py still running?`);
    }
    showModel(await answerOf(response, `The server did not switch to ${name}`));
    setStatus(`Now filling with ${name}.`);
  } catch (error) {
    showError(error.message);
    setStatus("");
    $("model-menu").value = document.body.dataset.model || "";
  } finally {
    $("model-menu").disabled = false;
    setBusy(false);
  }
}

$("model-menu").addEventListener("change", (event) => reportErrors(switchModel(event.target.value)));

fetch("/api/model")
  .then((response) => answerOf(response, "The server did not describe its model"))
  .then(showModel)
  .catch((error) => showError(`Cannot ask the server about its model (${error.message}); is app.py running?`));
setBrushSize(brushSize());
updateButtons();
