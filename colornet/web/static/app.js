// The colornet app page. It uses only the HTTP API of docs/app.md, so everything
// it does a script can do too.

import { zipFiles } from "./zip.js";

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  models: [],
  model: null,
  takesHints: false,
  limits: null,
  photos: [],
  undo: [], // [{photo, hints}] snapshots taken before each hint change
  queue: [], // photos waiting to be colourised, in order
  busy: false,
  batch: { done: 0, total: 0 },
  nextId: 1,
};

// ---------------------------------------------------------------------------
// Talking to the server.

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(message);
  }
  return response;
}

function decodingForm() {
  const form = new FormData();
  form.append("temperature", $("#temperature").value);
  form.append("method", $("#method").value);
  form.append("model", state.model);
  return form;
}

function hintsJson(photo, except = null) {
  const hints = photo.hints.filter((hint) => hint !== except && hint.color);
  return JSON.stringify(hints.map((hint) => ({ x: hint.x, y: hint.y, color: hint.color })));
}

// ---------------------------------------------------------------------------
// Status line and progress.

function setStatus(text, value = null) {
  $("#status-text").textContent = text;
  const bar = $("#progress");
  bar.hidden = value === null && !state.busy;
  if (value === null) bar.removeAttribute("value");
  else bar.value = value;
}

function showBatchProgress() {
  const { done, total } = state.batch;
  if (state.busy || state.queue.length) {
    setStatus(`Colourising ${Math.min(done + 1, total)} of ${total}…`, total ? done / total : null);
  } else {
    $("#progress").hidden = true;
    const failed = state.photos.filter((photo) => photo.error).length;
    const ready = state.photos.filter((photo) => photo.resultBlob).length;
    setStatus(state.photos.length ? `${ready} colourised` + (failed ? `, ${failed} failed` : "") : "Ready");
  }
  $("#zip").disabled = !state.photos.some((photo) => photo.resultBlob);
}

// ---------------------------------------------------------------------------
// Models.

async function loadModels() {
  const response = await api("/api/models");
  const listing = await response.json();
  state.models = listing.models;
  state.limits = listing.limits;
  const select = $("#model");
  select.replaceChildren();
  for (const model of state.models) {
    const option = document.createElement("option");
    option.value = model.id;
    option.textContent = model.ready
      ? model.label
      : `${model.label}: download ${Math.round(model.download_bytes / 1e6)} MB`;
    select.append(option);
  }
  select.value = listing.default;
  await chooseModel(listing.default);
}

async function chooseModel(id) {
  const select = $("#model");
  const model = state.models.find((entry) => entry.id === id);
  if (!model.ready) {
    const megabytes = Math.round(model.download_bytes / 1e6);
    if (!window.confirm(`Download ${model.id} (${megabytes} MB) into colornet's cache now?`)) {
      select.value = state.model;
      return;
    }
    select.disabled = true;
    try {
      await fetchModel(model);
    } catch (error) {
      setStatus(`Download of ${model.id} failed: ${error.message}`);
      select.value = state.model;
      return;
    } finally {
      select.disabled = false;
    }
  }
  setStatus(`Loading ${model.label}…`, null);
  try {
    const info = await (await api(`/api/models/${encodeURIComponent(id)}`)).json();
    state.model = id;
    state.takesHints = Boolean(info.takes_hints);
  } catch (error) {
    setStatus(`Cannot load ${model.label}: ${error.message}`);
    select.value = state.model;
    return;
  }
  showHintTools();
  for (const photo of state.photos) schedule(photo);
  showBatchProgress();
}

async function fetchModel(model) {
  const reply = await (await api(`/api/models/${encodeURIComponent(model.id)}/fetch`, { method: "POST" })).json();
  let job = reply.job;
  while (job && !["done", "failed", "cancelled"].includes(job.state)) {
    setStatus(`Downloading ${model.id}…`, null);
    await sleep(1000);
    job = await (await api(`/api/jobs/${job.id}`)).json();
  }
  if (job && job.state !== "done") throw new Error(job.message || job.state);
  model.ready = true;
  const option = [...$("#model").options].find((entry) => entry.value === model.id);
  option.textContent = model.label;
}

function showHintTools() {
  const note = $("#hint-note");
  note.classList.toggle("off", !state.takesHints);
  note.textContent = state.takesHints
    ? "Click a photo to add a colour hint; drag a hint to move it; Delete removes the chosen one; Ctrl+Z undoes."
    : "This model takes no hints, so the hint tools are off. A model trained with hints takes them.";
  for (const photo of state.photos) renderHints(photo);
  $("#undo").hidden = !state.takesHints;
}

// ---------------------------------------------------------------------------
// Photos.

function addFiles(files) {
  const videoExtensions = state.limits ? state.limits.video_extensions : [];
  for (const file of files) {
    const lower = file.name.toLowerCase();
    if (file.type.startsWith("video/") || videoExtensions.some((ext) => lower.endsWith(ext))) addVideo(file);
    else addPhoto(file);
  }
}

async function addPhoto(file) {
  const card = $("#photo-template").content.firstElementChild.cloneNode(true);
  const photo = {
    id: state.nextId++, file, card, name: file.name, width: 0, height: 0,
    hints: [], selected: null, version: 0, resultBlob: null, resultUrl: null, error: null,
  };
  state.photos.push(photo);
  $(".name", card).textContent = file.name;
  $(".remove", card).addEventListener("click", () => removePhoto(photo));
  $("#photos").prepend(card);
  wirePhoto(photo);
  try {
    // As the server does: the JPEG's EXIF orientation applied.
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    photo.width = bitmap.width;
    photo.height = bitmap.height;
    drawGrey(photo, bitmap);
    bitmap.close();
    $(".size", card).textContent = `${photo.width} × ${photo.height}`;
  } catch {
    // The server says what is wrong with it.
  }
  applyView(photo);
  schedule(photo);
}

function removePhoto(photo) {
  state.photos = state.photos.filter((other) => other !== photo);
  state.queue = state.queue.filter((other) => other !== photo);
  state.undo = state.undo.filter((step) => step.photo !== photo);
  if (photo.resultUrl) URL.revokeObjectURL(photo.resultUrl);
  photo.card.remove();
  $("#undo").disabled = !state.undo.length;
  showBatchProgress();
}

// The grey the network sees: each pixel's luminance, as sRGB grey (what its L is).
function drawGrey(photo, bitmap) {
  const toLinear = new Float32Array(256);
  for (let i = 0; i < 256; i++) {
    const v = i / 255;
    toLinear[i] = v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }
  const toSrgb = new Uint8ClampedArray(4096);
  for (let i = 0; i < 4096; i++) {
    const y = i / 4095;
    toSrgb[i] = Math.round(255 * (y <= 0.0031308 ? 12.92 * y : 1.055 * y ** (1 / 2.4) - 0.055));
  }
  for (const canvas of [$(".grey-canvas", photo.card), $(".overlay-grey", photo.card)]) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  const context = $(".grey-canvas", photo.card).getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const image = context.getImageData(0, 0, bitmap.width, bitmap.height);
  const pixels = image.data;
  for (let i = 0; i < pixels.length; i += 4) {
    const y = 0.2126729 * toLinear[pixels[i]] + 0.7151522 * toLinear[pixels[i + 1]] + 0.072175 * toLinear[pixels[i + 2]];
    const grey = toSrgb[Math.min(4095, Math.round(y * 4095))];
    pixels[i] = pixels[i + 1] = pixels[i + 2] = grey;
  }
  context.putImageData(image, 0, 0);
  $(".overlay-grey", photo.card).getContext("2d").putImageData(image, 0, 0);
}

function applyView(photo) {
  const slider = $("#view").value === "slider";
  const pair = $(".pair", photo.card);
  pair.classList.toggle("slider", slider);
  pair.classList.toggle("side", !slider);
  $(".overlay-grey", photo.card).hidden = !slider;
  $(".slider", photo.card).hidden = !slider;
  clipOverlay(photo);
}

function clipOverlay(photo) {
  const percent = $(".slider", photo.card).value;
  $(".overlay-grey", photo.card).style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
}

// ---------------------------------------------------------------------------
// Colourising: one request at a time (the server runs one network at a time anyway).

function schedule(photo) {
  photo.version++;
  if (!state.queue.includes(photo)) {
    if (!state.busy && !state.queue.length) state.batch = { done: 0, total: 0 };
    state.queue.push(photo);
    state.batch.total++;
  }
  photo.card.classList.add("working");
  $(".state", photo.card).textContent = "waiting…";
  showBatchProgress();
  pump();
}

async function pump() {
  if (state.busy) return;
  state.busy = true;
  while (state.queue.length) {
    const photo = state.queue.shift();
    const version = photo.version;
    $(".state", photo.card).textContent = "colourising…";
    showBatchProgress();
    try {
      const form = decodingForm();
      form.append("image", photo.file, photo.file.name);
      if (state.takesHints && photo.hints.length) form.append("hints", hintsJson(photo));
      const blob = await (await api("/api/colorize", { method: "POST", body: form })).blob();
      if (version === photo.version && state.photos.includes(photo)) showResult(photo, blob);
    } catch (error) {
      if (version === photo.version) showError(photo, error.message);
    }
    if (version === photo.version) photo.card.classList.remove("working");
    state.batch.done++;
  }
  state.busy = false;
  showBatchProgress();
}

function showResult(photo, blob) {
  if (photo.resultUrl) URL.revokeObjectURL(photo.resultUrl);
  photo.resultBlob = blob;
  photo.resultUrl = URL.createObjectURL(blob);
  photo.error = null;
  photo.card.classList.remove("failed");
  $(".error", photo.card).hidden = true;
  const img = $(".result", photo.card);
  img.src = photo.resultUrl;
  img.dataset.version = String(photo.version);
  const link = $(".download", photo.card);
  link.href = photo.resultUrl;
  link.download = resultName(photo.name);
  link.hidden = false;
  $(".state", photo.card).textContent = "done";
}

function showError(photo, message) {
  photo.error = message;
  photo.resultBlob = null;
  const box = $(".error", photo.card);
  box.textContent = message;
  box.hidden = false;
  $(".download", photo.card).hidden = true;
  $(".state", photo.card).textContent = "failed";
  photo.card.classList.add("failed");
}

function resultName(name) {
  const dot = name.lastIndexOf(".");
  return (dot > 0 ? name.slice(0, dot) : name) + "_color.png";
}

// ---------------------------------------------------------------------------
// Hints.

function wirePhoto(photo) {
  const card = photo.card;
  const stage = $(".stage", card);
  stage.addEventListener("click", (event) => {
    if (event.target.classList.contains("marker")) return;
    addHint(photo, event, stage);
  });
  $(".grey-canvas", card).addEventListener("click", (event) => addHint(photo, event, event.target));
  $(".slider", card).addEventListener("input", () => clipOverlay(photo));
  $(".picker", card).addEventListener("input", (event) => setHintColor(photo, event.target.value, true));
  $(".delete-hint", card).addEventListener("click", () => deleteHint(photo));
}

function pointOf(photo, event, element) {
  const box = element.getBoundingClientRect();
  const x = ((event.clientX - box.left) / box.width) * photo.width;
  const y = ((event.clientY - box.top) / box.height) * photo.height;
  return {
    x: Math.round(Math.min(Math.max(x, 0), photo.width - 1) * 10) / 10,
    y: Math.round(Math.min(Math.max(y, 0), photo.height - 1) * 10) / 10,
  };
}

function remember(photo) {
  state.undo.push({ photo, hints: photo.hints.map((hint) => ({ ...hint })) });
  if (state.undo.length > 200) state.undo.shift();
  $("#undo").disabled = false;
}

function addHint(photo, event, element) {
  if (!state.takesHints || !photo.width || photo.error) return;
  remember(photo);
  const hint = { ...pointOf(photo, event, element), color: colorAt(photo, event, element) };
  photo.hints.push(hint);
  photo.selected = hint;
  renderHints(photo);
  suggest(photo, hint);
}

// The result's colour at the point (the grey's before there is one): the new hint
// starts as what is there, so adding it changes nothing until a colour is chosen.
function colorAt(photo, event, element) {
  const point = pointOf(photo, event, element);
  const img = $(".result", photo.card);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 1;
  const context = canvas.getContext("2d");
  const source = img.complete && img.naturalWidth ? img : $(".grey-canvas", photo.card);
  context.drawImage(source, Math.floor(point.x), Math.floor(point.y), 1, 1, 0, 0, 1, 1);
  const [r, g, b] = context.getImageData(0, 0, 1, 1).data;
  return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
}

async function suggest(photo, hint) {
  const palette = $(".palette", photo.card);
  palette.replaceChildren();
  const form = decodingForm();
  form.append("image", photo.file, photo.file.name);
  form.append("x", String(hint.x));
  form.append("y", String(hint.y));
  form.append("k", "8");
  if (photo.hints.length > 1) form.append("hints", hintsJson(photo, hint));
  try {
    const reply = await (await api("/api/suggest", { method: "POST", body: form })).json();
    if (photo.selected !== hint) return;
    for (const suggestion of reply.suggestions) {
      const swatch = document.createElement("button");
      swatch.type = "button";
      swatch.className = "swatch";
      swatch.style.background = suggestion.color;
      swatch.title = `${suggestion.color} (${Math.round(suggestion.probability * 100)} %)`;
      swatch.dataset.color = suggestion.color;
      swatch.addEventListener("click", () => setHintColor(photo, suggestion.color, false));
      palette.append(swatch);
    }
  } catch (error) {
    palette.textContent = `no suggestions: ${error.message}`;
  }
}

let pickerTimer = null;

function setHintColor(photo, color, fromPicker) {
  const hint = photo.selected;
  if (!hint) return;
  if (!fromPicker || !photo.pickerEditing) remember(photo);
  photo.pickerEditing = fromPicker; // one undo step for a drag across the picker
  hint.color = color;
  renderHints(photo);
  clearTimeout(pickerTimer);
  pickerTimer = setTimeout(() => schedule(photo), fromPicker ? 150 : 0);
}

function deleteHint(photo) {
  if (!photo.selected) return;
  remember(photo);
  photo.hints = photo.hints.filter((hint) => hint !== photo.selected);
  photo.selected = null;
  renderHints(photo);
  schedule(photo);
}

function undo() {
  const step = state.undo.pop();
  $("#undo").disabled = !state.undo.length;
  if (!step || !state.photos.includes(step.photo)) return;
  step.photo.hints = step.hints;
  step.photo.selected = null;
  renderHints(step.photo);
  schedule(step.photo);
}

function renderHints(photo) {
  const layer = $(".markers", photo.card);
  layer.replaceChildren();
  const editor = $(".editor", photo.card);
  if (!state.takesHints) {
    editor.hidden = true;
    return;
  }
  for (const hint of photo.hints) {
    const marker = document.createElement("div");
    marker.className = "marker" + (hint === photo.selected ? " selected" : "");
    marker.style.left = `${(hint.x / photo.width) * 100}%`;
    marker.style.top = `${(hint.y / photo.height) * 100}%`;
    marker.style.background = hint.color;
    marker.title = `hint ${hint.color} at (${hint.x}, ${hint.y})`;
    wireMarker(photo, hint, marker);
    layer.append(marker);
  }
  editor.hidden = !photo.selected;
  if (photo.selected) $(".picker", photo.card).value = photo.selected.color;
  photo.pickerEditing = false;
}

function wireMarker(photo, hint, marker) {
  marker.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    event.stopPropagation();
    const selectedBefore = photo.selected;
    photo.selected = hint;
    const stage = $(".stage", photo.card);
    const before = photo.hints.map((other) => ({ ...other }));
    let moved = false;
    marker.setPointerCapture(event.pointerId);
    const move = (moveEvent) => {
      const point = pointOf(photo, moveEvent, stage);
      moved = moved || point.x !== hint.x || point.y !== hint.y;
      Object.assign(hint, point);
      marker.style.left = `${(hint.x / photo.width) * 100}%`;
      marker.style.top = `${(hint.y / photo.height) * 100}%`;
    };
    const up = () => {
      marker.removeEventListener("pointermove", move);
      marker.removeEventListener("pointerup", up);
      if (moved) {
        state.undo.push({ photo, hints: before });
        $("#undo").disabled = false;
        schedule(photo);
      }
      renderHints(photo);
      if (moved || selectedBefore !== hint) suggest(photo, hint);
    };
    marker.addEventListener("pointermove", move);
    marker.addEventListener("pointerup", up);
  });
  marker.addEventListener("click", (event) => event.stopPropagation());
}

// ---------------------------------------------------------------------------
// Videos: background jobs on the server.

async function addVideo(file) {
  const card = $("#video-template").content.firstElementChild.cloneNode(true);
  $(".name", card).textContent = file.name;
  $("#videos").prepend(card);
  const status = $(".state", card);
  const bar = $(".job-progress", card);
  status.textContent = "uploading…";
  const form = decodingForm();
  form.append("video", file, file.name);
  let job;
  try {
    job = await (await api("/api/jobs", { method: "POST", body: form })).json();
  } catch (error) {
    status.textContent = error.message;
    status.classList.add("error");
    bar.hidden = true;
    $(".cancel", card).hidden = true;
    return;
  }
  $(".cancel", card).addEventListener("click", () => api(`/api/jobs/${job.id}`, { method: "DELETE" }));
  while (!["done", "failed", "cancelled"].includes(job.state)) {
    status.textContent = job.state === "queued" ? "waiting…" : `${Math.round((job.progress || 0) * 100)} %`;
    if (job.progress === null) bar.removeAttribute("value");
    else bar.value = job.progress;
    await sleep(700);
    try {
      job = await (await api(`/api/jobs/${job.id}`)).json();
    } catch (error) {
      job = { state: "failed", message: error.message };
    }
  }
  $(".cancel", card).hidden = true;
  bar.hidden = job.state !== "done";
  bar.value = 1;
  if (job.state === "done") {
    status.textContent = "done";
    const link = $(".download", card);
    link.href = job.result_url;
    link.hidden = false;
  } else {
    status.textContent = job.message || job.state;
    status.classList.toggle("error", job.state === "failed");
  }
}

// ---------------------------------------------------------------------------
// The page's controls.

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function downloadAll() {
  const used = new Set();
  const files = [];
  for (const photo of [...state.photos].reverse()) {
    if (!photo.resultBlob) continue;
    let name = resultName(photo.name);
    for (let n = 2; used.has(name); n++) name = resultName(photo.name).replace(/_color\.png$/, `-${n}_color.png`);
    used.add(name);
    files.push({ name, blob: photo.resultBlob });
  }
  const url = URL.createObjectURL(await zipFiles(files));
  const link = document.createElement("a");
  link.href = url;
  link.download = "colornet.zip";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

let settingTimer = null;

function wirePage() {
  const drop = $("#drop");
  $("#files").addEventListener("change", (event) => {
    addFiles([...event.target.files]);
    event.target.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles([...event.dataTransfer.files]);
  });
  $("#model").addEventListener("change", (event) => chooseModel(event.target.value));
  $("#temperature").addEventListener("input", (event) => {
    $("#temperature-value").textContent = Number(event.target.value).toFixed(2);
    clearTimeout(settingTimer);
    settingTimer = setTimeout(() => state.photos.forEach(schedule), 250);
  });
  $("#method").addEventListener("change", () => state.photos.forEach(schedule));
  $("#view").addEventListener("change", () => state.photos.forEach(applyView));
  $("#undo").addEventListener("click", undo);
  $("#zip").addEventListener("click", downloadAll);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "z") {
      event.preventDefault();
      undo();
    } else if ((event.key === "Delete" || event.key === "Backspace") && event.target === document.body) {
      const photo = state.photos.find((candidate) => candidate.selected);
      if (photo) deleteHint(photo);
    }
  });
}

wirePage();
loadModels().then(showBatchProgress, (error) => setStatus(`Cannot reach the server: ${error.message}`));
