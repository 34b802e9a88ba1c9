// The csnln page: upload, poll the job, compare, ask for attention maps. No framework.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], limits: {}, job: null, attentionJob: null, result: null };

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = {};
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function fillScales() {
  const model = state.models.find((m) => m.name === $("model").value);
  $("scale").innerHTML = model.scales.map((s) => `<option value="${s}">×${s}</option>`).join("");
}

async function init() {
  const info = await api("/api/models");
  state.models = info.models;
  state.limits = info.limits;
  $("model").innerHTML = info.models.map((m) => `<option>${m.name}</option>`).join("");
  $("precision").innerHTML = info.precisions.map((p) => `<option>${p}</option>`).join("");
  fillScales();
  const mib = (info.limits.max_upload_bytes / 2 ** 20).toFixed(1);
  const mpx = (info.limits.max_pixels / 1e6).toFixed(2);
  $("limits").textContent = `Up to ${mib} MiB and ${mpx} megapixels per image; one job runs at a time, others wait in line.`;
}

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

function describe(status) {
  if (status.state === "queued") {
    return status.position ? `waiting: ${status.position} job(s) ahead` : "starting…";
  }
  if (status.state === "running") {
    const left = status.left_s != null ? `, about ${Math.ceil(status.left_s)} s left` : "";
    return `running: ${status.done} of ${status.total} steps${left}`;
  }
  return status.message || status.state;
}

async function follow(jobId, onStatus) {
  for (;;) {
    const status = await api(`/api/jobs/${jobId}`);
    onStatus(status);
    if (!["queued", "running"].includes(status.state)) return status;
    await sleep(250);
  }
}

async function upscale() {
  const file = $("file").files[0];
  if (!file) return;
  showError("");
  if (file.size > state.limits.max_upload_bytes) {
    showError(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB: larger than this server's limit of ${(state.limits.max_upload_bytes / 2 ** 20).toFixed(1)} MiB`);
    return;
  }
  const query = new URLSearchParams({
    model: $("model").value, scale: $("scale").value, precision: $("precision").value,
    filename: file.name,
  });
  $("go").disabled = true;
  $("cancel").hidden = false;
  $("progress-box").hidden = false;
  $("progress").value = 0;
  $("status").textContent = "uploading…";
  try {
    const job = await api(`/api/jobs?${query}`, { method: "POST", body: file });
    state.job = job.id;
    const final = await follow(job.id, (s) => {
      $("status").textContent = describe(s);
      $("progress").max = Math.max(1, s.total);
      $("progress").value = s.done;
    });
    if (final.state !== "done") throw new Error(final.message || final.state);
    showResult(job.id, final.info);
  } catch (error) {
    showError(error.message);
    $("progress-box").hidden = true;
  } finally {
    $("go").disabled = false;
    $("cancel").hidden = true;
    state.job = null;
  }
}

function showResult(jobId, info) {
  state.result = { id: jobId, ...info };
  const stamp = `?t=${Date.now()}`;
  $("before").src = `/api/jobs/${jobId}/bicubic.png${stamp}`;
  $("after").src = `/api/jobs/${jobId}/result.png${stamp}`;
  $("download").href = `/api/jobs/${jobId}/result.png`;
  $("download").download = info.download;
  $("info").textContent = `${info.lr_width}×${info.lr_height} → ${info.width}×${info.height}, ${info.model} ×${info.scale}, ${info.precision}, ${info.tiles} tile(s), ${info.seconds} s`;
  $("status").textContent = `done in ${info.seconds} s`;
  $("result").hidden = false;
  applyZoom();
}

function applyZoom() {
  if (!state.result) return;
  const zoom = $("zoom").value;
  const width = zoom === "fit"
    ? Math.min(state.result.width, $("viewport").clientWidth || state.result.width)
    : state.result.width * Number(zoom);
  for (const img of [$("before"), $("after")]) img.style.width = `${width}px`;
}

function applySlider() {
  const value = $("slider").value;
  $("after").style.clipPath = `inset(0 0 0 ${value}%)`;
  $("divider").style.left = `${value}%`;
}

async function showAttention(event) {
  if (!state.result) return;
  if (state.result.model === "bicubic") {
    showError("bicubic has no attention: upscale with a csnln model to see where it borrows from");
    return;
  }
  const rect = $("after").getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * state.result.lr_width);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * state.result.lr_height);
  $("attention-box").hidden = false;
  $("attention-status").textContent = `pixel x=${x}, y=${y}: computing…`;
  try {
    const job = await api(`/api/jobs/${state.result.id}/attention?x=${x}&y=${y}`, { method: "POST" });
    state.attentionJob = job.id;
    const final = await follow(job.id, (s) => { $("attention-status").textContent = `pixel x=${x}, y=${y}: ${describe(s)}`; });
    if (final.state !== "done") throw new Error(final.message || final.state);
    const info = final.info;
    $("attention").src = `/api/jobs/${job.id}/picture.png`;
    $("attention-status").textContent = `pixel x=${x}, y=${y}, in the ${info.window[2]}×${info.window[3]} window at (${info.window[0]}, ${info.window[1]}). Weights on a log scale relative to each map's peak; blue: the top matches.`;
    $("attention-table").querySelector("tbody").innerHTML = info.maps.map((m) => {
      const top = m.top[0];
      const where = top ? `${Math.round(top.box[0])}, ${Math.round(top.box[1])} (${top.weight.toPrecision(3)})` : "";
      return `<tr><td>${m.step}</td><td>${m.kind}</td><td>${m.entropy_bits}</td><td>${Math.round(2 ** m.entropy_bits)} of ${m.positions}</td><td>${where}</td></tr>`;
    }).join("");
  } catch (error) {
    $("attention-status").textContent = `pixel x=${x}, y=${y}: ${error.message}`;
  } finally {
    state.attentionJob = null;
  }
}

function cancelRunning(useBeacon) {
  for (const id of [state.job, state.attentionJob]) {
    if (!id) continue;
    if (useBeacon) navigator.sendBeacon(`/api/jobs/${id}/cancel`);
    else fetch(`/api/jobs/${id}/cancel`, { method: "POST" });
  }
}

$("file").addEventListener("change", () => { $("go").disabled = !$("file").files.length; });
$("model").addEventListener("change", fillScales);
$("go").addEventListener("click", upscale);
$("cancel").addEventListener("click", () => cancelRunning(false));
$("slider").addEventListener("input", applySlider);
$("zoom").addEventListener("change", applyZoom);
$("stage").addEventListener("click", showAttention);
window.addEventListener("resize", applyZoom);
// A closed or reloaded page stops its jobs (the server also cancels jobs nobody polls).
window.addEventListener("pagehide", () => cancelRunning(true));
init().catch((error) => showError(`cannot reach the server: ${error.message}`));
