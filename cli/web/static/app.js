// The studio page: pick inputs, POST /jobs, follow /jobs/{id}/events, show the result.
"use strict";

const $ = (id) => document.getElementById(id);
const chosen = { content: null, style: null };  // a File, or null when a sample is selected
let current = null;   // the running job's id
let events = null;    // its EventSource

// The drop zone of a role: ids drop-<role>, file-<role>, sample-<role>, chosen-<role>.
function addDrop(role, title) {
  const drop = $("drop-template").content.firstElementChild.cloneNode(true);
  drop.id = "drop-" + role;
  drop.dataset.role = role;
  drop.querySelector("h2").textContent = title;
  drop.querySelector("input[type=file]").id = "file-" + role;
  const sample = drop.querySelector("select");
  sample.id = "sample-" + role;
  sample.setAttribute("aria-label", title + " sample");
  drop.querySelector(".chosen").id = "chosen-" + role;
  $("drops").append(drop);
}

addDrop("content", "Content");
addDrop("style", "Style");

function mode() { return document.querySelector("input[name=mode]:checked").value; }

// The studio answers only its own page: the token arrives once in the URL the server
// printed and is kept in an HttpOnly cookie, which every same-origin request carries.
async function api(url, options) {
  const response = await fetch(url, options);
  if (response.status === 401) {
    throw new Error("this page has no access token: open the link that audiostyle serve printed (it ends in ?token=…)");
  }
  return response;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function setPlayer(role, src) {
  const player = $("player-" + role);
  if (src) { player.src = src; } else { player.removeAttribute("src"); player.load(); }
}

function choose(role, file) {
  chosen[role] = file;
  if (file) {
    $("sample-" + role).value = "";
    $("chosen-" + role).textContent = file.name + " (" + (file.size / 1048576).toFixed(1) + " MB)";
    setPlayer(role, URL.createObjectURL(file));
  }
}

function chooseSample(role, name) {
  chosen[role] = null;
  $("file-" + role).value = "";
  $("chosen-" + role).textContent = name ? "sample: " + name : "nothing chosen";
  setPlayer(role, name ? "/samples/" + encodeURIComponent(name) : null);
}

function ready() {
  const has = (role) => chosen[role] || $("sample-" + role).value;
  return has("style") && (mode() === "texture" || has("content"));
}

function updateButtons() {
  $("start").disabled = Boolean(current) || !ready();
  $("cancel").disabled = !current;
}

function seconds(s) {
  if (s === null || s === undefined) return "–";
  return s < 60 ? s.toFixed(0) + " s" : Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
}

function losses(l) {
  return Object.entries(l || {}).filter(([k]) => k !== "total").map(([k, v]) => k + " " + Number(v).toPrecision(3)).join("  ");
}

function render(job) {
  $("progress").value = job.progress;
  let text;
  if (job.status === "queued") text = "Queued: " + job.position + " job(s) ahead";
  else if (job.status === "running") text = job.total
    ? (job.stage && job.stage !== "solve" ? job.stage + " step " : "Step ") + job.step + " / " + job.total + "   " + losses(job.losses) + "   ETA " + seconds(job.eta_seconds)
    : "Loading and analysing…";
  else if (job.status === "done") text = "Done in " + seconds(job.summary.seconds) + ": " + job.summary.duration.toFixed(2) + " s of audio, style loss " + Number(job.summary.losses_first.style).toPrecision(3) + " → " + Number(job.summary.losses_last.style).toPrecision(3) + (job.summary.style_view ? " (" + job.summary.style_view + " view)" : "");
  else if (job.status === "cancelled") text = "Cancelled.";
  else text = "Failed.";
  $("status-text").textContent = text;
  if (job.error) showError(job.error.type + ": " + job.error.message);
}

function showResult(job) {
  const urls = job.urls;
  if (urls.inputs.content) setPlayer("content", urls.inputs.content);
  setPlayer("style", urls.inputs.style);
  setPlayer("result", urls.result.wav);
  $("download-wav").href = urls.result.wav;
  $("download-flac").href = urls.result.flac;
  $("downloads").hidden = false;
  if (urls.spectrograms) $("spectrograms").src = urls.spectrograms;
  $("spectrograms").hidden = !urls.spectrograms;
  showScores(job);
}

// The run's trade-off: how much of the content it kept, how much of the style it took.
function showScores(job) {
  const scores = job.summary && job.summary.scores;
  $("scores").hidden = !scores;
  if (!scores) return;
  for (const name of ["content", "style"]) {
    const value = scores[name];
    $("score-" + name).value = value === null ? 0 : value;
    $("score-" + name + "-value").textContent = value === null ? "n/a" : value.toFixed(2);
  }
  $("score-strength").textContent = "(strength " + Number(job.settings.strength).toFixed(2) + ")";
}

async function refreshHistory() {
  const jobs = await (await api("/jobs")).json();
  const list = $("results");
  list.textContent = "";
  if (!jobs.length) { list.innerHTML = '<li class="empty">none yet</li>'; return; }
  for (const job of jobs) {
    const li = document.createElement("li");
    const name = job.mode === "texture" ? "texture of " + job.inputs.style : job.inputs.content + " × " + job.inputs.style;
    const label = document.createElement("span");
    label.textContent = name + " (" + job.settings.preset + ", " + job.settings.iterations + " it.)";
    const state = document.createElement("span");
    state.className = "state-" + job.status;
    state.textContent = job.status;
    li.append(label, state);
    if (job.status === "done") {
      const listen = document.createElement("a");
      listen.href = "#"; listen.textContent = "show";
      listen.onclick = (e) => { e.preventDefault(); showResult(job); render(job); };
      const wav = document.createElement("a");
      wav.href = job.urls.result.wav; wav.textContent = "WAV"; wav.download = "";
      const flac = document.createElement("a");
      flac.href = job.urls.result.flac; flac.textContent = "FLAC"; flac.download = "";
      li.append(listen, wav, flac);
    }
    list.append(li);
  }
}

function follow(id) {
  current = id;
  updateButtons();
  events = new EventSource("/jobs/" + id + "/events");
  const handle = (e) => render(JSON.parse(e.data));
  events.addEventListener("progress", handle);
  events.addEventListener("end", (e) => {
    const job = JSON.parse(e.data);
    render(job);
    events.close(); events = null; current = null;
    if (job.status === "done") showResult(job);
    updateButtons();
    refreshHistory();
  });
  events.onerror = () => {
    // The server went away or the stream broke: fall back to one look at the job.
    if (!events || events.readyState !== EventSource.CLOSED) return;
    events = null; current = null; updateButtons();
  };
}

async function start() {
  showError("");
  const form = new FormData();
  form.append("mode", mode());
  for (const role of mode() === "texture" ? ["style"] : ["content", "style"]) {
    if (chosen[role]) form.append(role, chosen[role]);
    else form.append(role + "_sample", $("sample-" + role).value);
  }
  form.append("preset", $("preset").value);
  form.append("strength", $("strength").value);
  if ($("iterations").value) form.append("iterations", $("iterations").value);
  form.append("network", $("network").value);
  if (mode() === "texture") {
    form.append("duration", $("duration").value);
    form.append("loop", $("loop").checked ? "true" : "false");
  }
  $("start").disabled = true;
  $("progress").value = 0;
  $("downloads").hidden = true;
  setPlayer("result", null);
  $("spectrograms").hidden = true;
  $("scores").hidden = true;
  $("status-text").textContent = "Uploading…";
  let response, body;
  try {
    response = await api("/jobs", { method: "POST", body: form });
    body = await response.json();
  } catch (error) {
    showError(String(error.message || error));
    $("status-text").textContent = "Not started.";
    updateButtons();
    return;
  }
  if (!response.ok) {
    showError(body.detail || response.statusText);
    $("status-text").textContent = "Not started.";
    updateButtons();
    return;
  }
  render(body);
  follow(body.id);
  refreshHistory();
}

async function cancel() {
  if (current) await api("/jobs/" + current, { method: "DELETE" });
}

async function init() {
  const options = await (await api("/options")).json();
  if (options.limits) $("iterations").max = options.limits.iterations;
  for (const [name, preset] of Object.entries(options.presets)) {
    const option = new Option(name + " (" + preset.iterations + " it.)", name);
    $("preset").append(option);
  }
  $("preset").value = options.default_preset;
  for (const net of options.networks) $("network").append(new Option(net, net));
  for (const role of ["content", "style"]) {
    for (const s of options.samples) $("sample-" + role).append(new Option(s.name, s.name));
    $("file-" + role).addEventListener("change", (e) => { choose(role, e.target.files[0] || null); updateButtons(); });
    $("sample-" + role).addEventListener("change", (e) => { chooseSample(role, e.target.value); updateButtons(); });
    const drop = $("drop-" + role);
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault(); drop.classList.remove("over");
      if (e.dataTransfer.files.length) { choose(role, e.dataTransfer.files[0]); updateButtons(); }
    });
  }
  $("strength").addEventListener("input", () => { $("strength-value").textContent = Number($("strength").value).toFixed(2); });
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", () => {
      document.body.classList.toggle("texture", mode() === "texture");
      $("drop-content").classList.toggle("disabled", mode() === "texture");
      $("fig-content").hidden = mode() === "texture";
      updateButtons();
    });
  }
  $("start").addEventListener("click", start);
  $("cancel").addEventListener("click", cancel);
  updateButtons();
  refreshHistory();
}

init().catch((error) => showError("could not reach the studio server: " + (error.message || error)));
