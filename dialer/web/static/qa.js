/* QA page: search recordings, play one, score it with the campaign's form (recordings' JSON API).
   Served as a file because the console's Content-Security-Policy allows no inline script. */
(function () {
  "use strict";
  const root = document.getElementById("qa");
  if (!root) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const results = document.getElementById("qa-results");
  const errorBox = document.getElementById("qa-error");
  let current = null;

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }
  function length(s) {
    return s == null ? "" : Math.floor(s / 60) + ":" + String(Math.round(s % 60)).padStart(2, "0");
  }
  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }
  function detailOf(body) {
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
    return String(body.message || body.detail || "request failed");
  }
  async function getJson(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(detailOf(body));
    return body;
  }

  async function search(event) {
    if (event) event.preventDefault();
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(document.getElementById("qa-filters"))) if (value) params.set(key, value);
    let rows;
    try {
      rows = await getJson(root.dataset.searchUrl + "?" + params);
    } catch (exc) {
      showError(exc.message);
      return;
    }
    showError("");
    results.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.dataset.id = r.id;
      tr.tabIndex = 0;
      cell(tr, new Date(r.started_at).toLocaleString());
      cell(tr, r.agent_id || "");
      cell(tr, r.campaign || r.queue || "");
      cell(tr, length(r.duration), "num");
      cell(tr, r.outcome || "");
      tr.addEventListener("click", () => open(r, tr));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(r, tr); });
      if (current && current.id === r.id) tr.classList.add("selected");
      results.appendChild(tr);
    }
    document.getElementById("qa-none").hidden = rows.length > 0;
    const campaign = params.get("campaign");
    const report = await getJson(root.dataset.reportUrl + (campaign ? "?campaign=" + encodeURIComponent(campaign) : ""));
    const body = document.getElementById("qa-report");
    body.replaceChildren();
    for (const a of report) {
      const tr = document.createElement("tr");
      cell(tr, a.agent_id || "—");
      cell(tr, String(a.count), "num");
      cell(tr, a.average.toFixed(1) + " %", "num");
      cell(tr, a.lowest.toFixed(1) + " %", "num");
      cell(tr, a.highest.toFixed(1) + " %", "num");
      body.appendChild(tr);
    }
  }

  async function open(recording, tr) {
    current = recording;
    for (const row of results.querySelectorAll("tr.selected")) row.classList.remove("selected");
    tr.classList.add("selected");
    document.getElementById("qa-detail").hidden = false;
    document.getElementById("qa-detail-title").textContent = "Call " + recording.call_id;
    document.getElementById("qa-detail-meta").textContent = [
      recording.agent_id ? "agent " + recording.agent_id : "",
      recording.campaign || recording.queue || "",
      new Date(recording.started_at).toLocaleString(),
    ].filter(Boolean).join(" · ");
    const player = document.getElementById("qa-player");
    player.hidden = recording.deleted;
    player.src = recording.deleted ? "" : recording.audio_url;
    const campaign = recording.campaign ? "?campaign=" + encodeURIComponent(recording.campaign) : "";
    const form = await getJson(root.dataset.formUrl + campaign);
    document.getElementById("qa-scale").textContent =
      "Form " + form.name + ": score each point from " + form.scale_min + " to " + form.scale_max + ".";
    const box = document.getElementById("qa-criteria");
    box.replaceChildren();
    for (const c of form.criteria) {
      const label = document.createElement("label");
      label.className = "criterion";
      const text = document.createElement("span");
      text.textContent = c.label + (c.weight !== 1 ? " (×" + c.weight + ")" : "");
      if (c.description) text.title = c.description;
      const input = document.createElement("input");
      Object.assign(input, { type: "number", name: c.name, min: form.scale_min, max: form.scale_max, step: 1, required: true });
      label.append(text, input);
      box.appendChild(label);
    }
    document.getElementById("qa-score-status").textContent = "";
  }

  async function submitScore(event) {
    event.preventDefault();
    if (!current) return;
    const status = document.getElementById("qa-score-status");
    const data = new FormData(event.target);
    const scores = {};
    for (const input of document.querySelectorAll("#qa-criteria input")) scores[input.name] = Number(input.value);
    const response = await fetch(root.dataset.scoreUrl.replace("RECORDING_ID", encodeURIComponent(current.id)), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ scores: scores, comments: data.get("comments") || null }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      status.className = "ok";
      status.textContent = "Saved: " + body.total.toFixed(1) + " %";
      search();
    } else {
      status.className = "error";
      status.textContent = detailOf(body);
    }
  }

  document.getElementById("qa-filters").addEventListener("submit", search);
  document.getElementById("qa-score-form").addEventListener("submit", submitScore);
  search();
})();
