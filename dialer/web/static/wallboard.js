/* Wallboard: a snapshot then deltas over /ws/wallboard; time in state counted here from `since`. */
"use strict";
(function () {
  const C = window.Console;
  const ORDER = { on_call: 0, offered: 1, wrap_up: 2, ready: 3, paused: 4, logged_out: 5 };
  const LABEL = { on_call: "on call", offered: "ringing", wrap_up: "wrap-up", ready: "ready", paused: "paused", logged_out: "logged out" };
  const live = { agents: new Map(), queues: new Map(), campaigns: new Map(), calls: new Map(), offset: 0 };
  const cards = new Map();
  const grid = document.getElementById("agents");
  const conn = document.getElementById("conn-status");
  const toastBox = document.getElementById("toast");
  let socket = null, retry = 0, toastTimer = null;

  function now() { return Date.now() + live.offset; }
  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(x < 0.1 ? 1 : 0) + "%"; }
  function secs(x) { return x === null || x === undefined ? "–" : Math.round(x) + " s"; }

  function toast(message, isError) {
    toastBox.textContent = message;
    toastBox.className = "toast show" + (isError ? " error" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastBox.className = "toast"; }, 3500);
  }

  async function act(method, path, body) {
    try { const r = await C.api(method, path, body); toast(r && r.message ? r.message : "Done"); }
    catch (e) { toast(e.message, true); }
  }

  // -- agents ---------------------------------------------------------------------------------
  function agentCard(a) {
    let card = cards.get(a.id);
    if (!card) {
      card = C.el("article", { class: "agent", "data-agent-id": a.id });
      const top = C.el("div", { class: "top" });
      top.append(C.el("span", { class: "name" }), C.el("span", { class: "id" }));
      const line = C.el("div", { class: "state-line" });
      line.append(C.el("span", { class: "chip state" }), C.el("span", { class: "timer", "data-since": "0" }));
      const actions = C.el("div", { class: "actions" });
      for (const [action, label] of [["ready", "Ready"], ["pause", "Pause"], ["logout", "Log out"], ["listen", "Listen"], ["whisper", "Whisper"], ["barge", "Barge"]]) {
        actions.append(C.el("button", { type: "button", "data-action": action, title: label + " " + a.id }, label));
      }
      card.append(top, line, C.el("div", { class: "detail" }), actions);
      cards.set(a.id, card);
    }
    const previous = card.getAttribute("data-state");
    card.className = "agent state-" + a.state + (previous && previous !== a.state ? " flash-change" : "");
    card.setAttribute("data-state", a.state);
    card.querySelector(".name").textContent = a.name || a.id;
    card.querySelector(".id").textContent = a.name ? a.id : "";
    const chip = card.querySelector(".chip.state");
    chip.className = "chip state state-" + a.state;
    chip.textContent = LABEL[a.state] || a.state;
    card.querySelector(".timer").setAttribute("data-since", a.since);
    const detail = card.querySelector(".detail");
    detail.textContent = "";
    if (a.supervisor) {
      detail.append(C.el("span", { class: "monitor" }, "🎧 " + a.supervisor + " (" + a.supervise_mode + ") "));
    }
    const bits = [];
    if (a.reason && (a.state === "paused" || a.state === "logged_out")) bits.push(a.reason);
    if (a.queue) bits.push(a.queue);
    if (a.call_id && a.state !== "ready") bits.push("call " + a.call_id);
    if (a.answered) bits.push(a.answered + " answered");
    detail.append(document.createTextNode(bits.join(" · ")));
    const onCall = a.state === "on_call";
    for (const b of card.querySelectorAll("button")) {
      const action = b.getAttribute("data-action");
      b.disabled = (action === "ready" && (a.state === "ready" || onCall || a.state === "offered")) ||
        (action === "pause" && (a.state === "paused" || onCall || a.state === "offered" || a.state === "logged_out")) ||
        (action === "logout" && (a.state === "logged_out" || onCall || a.state === "offered")) ||
        ((action === "listen" || action === "whisper" || action === "barge") && !onCall);
    }
    return card;
  }

  function renderAgents() {
    const list = Array.from(live.agents.values()).sort((x, y) =>
      (ORDER[x.state] ?? 9) - (ORDER[y.state] ?? 9) || (x.name || x.id).localeCompare(y.name || y.id));
    const wanted = list.map(agentCard);
    for (const [id, card] of cards) { if (!live.agents.has(id)) { card.remove(); cards.delete(id); } }
    let cursor = grid.firstElementChild;
    for (const card of wanted) {
      if (card !== cursor) grid.insertBefore(card, cursor); else cursor = cursor.nextElementSibling;
    }
    document.getElementById("agents-empty").hidden = list.length > 0;
    const count = (s) => list.filter((a) => a.state === s).length;
    document.getElementById("kpi-logged-in").textContent = list.length - count("logged_out");
    for (const s of ["ready", "on_call", "wrap_up", "paused"]) document.getElementById("kpi-" + s).textContent = count(s) + (s === "on_call" ? count("offered") : 0);
  }

  grid.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = button.closest(".agent").getAttribute("data-agent-id");
    const action = button.getAttribute("data-action");
    const path = "/api/agents/" + encodeURIComponent(id);
    if (action === "ready") act("POST", path + "/state", { state: "ready", reason: "" });
    else if (action === "pause") act("POST", path + "/state", { state: "paused", reason: "supervisor" });
    else if (action === "logout") { if (confirm("Log agent " + id + " out?")) act("POST", path + "/logout"); }
    else act("POST", path + "/supervise", { mode: action });
  });

  // -- queues, campaigns, calls ---------------------------------------------------------------
  function cell(text, cls) { return C.el("td", cls ? { class: cls } : null, text); }

  function renderQueues() {
    const body = document.querySelector("#queues tbody");
    body.textContent = "";
    let waiting = 0, oldest = null, offered = 0, within = 0;
    for (const q of Array.from(live.queues.values()).sort((a, b) => a.id.localeCompare(b.id))) {
      waiting += q.waiting;
      if (q.oldest !== null && (oldest === null || q.oldest < oldest)) oldest = q.oldest;
      if (q.service_level !== null) { offered += q.offered; within += q.service_level * q.offered; }
      const tr = C.el("tr", { "data-queue": q.id });
      const longest = cell(q.oldest === null ? "–" : "", "num");
      if (q.oldest !== null) longest.setAttribute("data-since", q.oldest);
      const sl = cell(pct(q.service_level), "num " + (q.service_level === null ? "" : q.service_level >= 0.8 ? "good" : "bad"));
      const ab = cell(pct(q.abandon_rate), "num " + (q.abandon_rate !== null && q.abandon_rate > 0.05 ? "bad" : ""));
      tr.append(cell(q.id), cell(q.waiting, "num" + (q.waiting > 0 ? " bad" : "")), longest, sl, cell(secs(q.asa_s), "num"), ab, cell(q.answered, "num"));
      body.append(tr);
    }
    document.getElementById("kpi-waiting").textContent = waiting;
    const kpiLongest = document.getElementById("kpi-longest");
    kpiLongest.setAttribute("data-since", oldest === null ? "" : oldest);
    if (oldest === null) kpiLongest.textContent = "0:00";
    document.getElementById("kpi-sl").textContent = offered ? pct(within / offered) : "–";
  }

  function renderCampaigns() {
    const body = document.querySelector("#campaigns tbody");
    body.textContent = "";
    for (const c of Array.from(live.campaigns.values()).sort((a, b) => a.name.localeCompare(b.name))) {
      const tr = C.el("tr", { "data-campaign": c.name });
      const name = cell(c.name);
      name.append(C.el("div", { class: "muted" }, c.status + (c.mode ? " · " + c.mode : "")));
      const eff = C.el("td");
      eff.textContent = c.effective_today + (c.target_today ? " / " + c.target_today : "");
      if (c.target_today) {
        const bar = C.el("div", { class: "progress" });
        const fill = C.el("span");
        fill.style.width = Math.min(100, (100 * c.effective_today) / c.target_today) + "%";
        bar.append(fill); eff.append(bar);
      }
      const actions = C.el("td", { class: "actions" });
      const button = C.el("button", { type: "button" }, c.status === "active" ? "Pause" : "Resume");
      button.addEventListener("click", () => act("POST", "/api/campaigns/" + encodeURIComponent(c.name) + (c.status === "active" ? "/pause" : "/resume")));
      actions.append(button);
      tr.append(name, cell(c.dial_level === null ? "–" : c.dial_level.toFixed(2), "num"),
        cell(c.lines_in_use + (c.max_lines ? " / " + c.max_lines : ""), "num"),
        cell(pct(c.abandon_rate_24h), "num" + (c.abandon_rate_24h > 0.03 ? " bad" : "")),
        cell(pct(c.abandon_rate_30d), "num" + (c.abandon_rate_30d > 0.03 ? " bad" : "")), eff, actions);
      body.append(tr);
    }
    if (!live.campaigns.size) { const tr = C.el("tr"); tr.append(C.el("td", { colspan: "7", class: "empty" }, "No campaign is running.")); body.append(tr); }
  }

  function renderCalls() {
    const body = document.querySelector("#calls tbody");
    body.textContent = "";
    const ready = Array.from(live.agents.values()).filter((a) => a.state === "ready");
    const order = { queued: 0, ringing: 1, talking: 2 };
    const calls = Array.from(live.calls.values()).sort((a, b) => order[a.state] - order[b.state] || a.entered - b.entered);
    for (const call of calls) {
      const tr = C.el("tr", { "data-call-id": call.id, "data-state": call.state });
      const time = cell("", "num"); time.setAttribute("data-since", call.state === "queued" ? call.entered : call.since);
      const who = C.el("td");
      if (call.state === "queued") {
        const select = C.el("select", { "aria-label": "Agent for call " + call.id });
        select.append(C.el("option", { value: "" }, ready.length ? "Assign to…" : "no agent ready"));
        for (const a of ready) select.append(C.el("option", { value: a.id }, a.name || a.id));
        const go = C.el("button", { type: "button" }, "Assign");
        go.addEventListener("click", () => { if (select.value) act("POST", "/api/calls/" + encodeURIComponent(call.id) + "/assign", { agent_id: select.value }); });
        who.append(select, document.createTextNode(" "), go);
      } else {
        const agent = live.agents.get(call.agent_id);
        who.textContent = agent ? agent.name || agent.id : call.agent_id || "";
      }
      tr.append(cell(call.id + (call.vip ? " ★" : "")), cell(call.queue), cell(call.state), time, who);
      body.append(tr);
    }
    if (!calls.length) { const tr = C.el("tr"); tr.append(C.el("td", { colspan: "5", class: "empty" }, "No calls right now.")); body.append(tr); }
  }

  function tick() {
    const t = now();
    for (const node of document.querySelectorAll("[data-since]")) {
      const since = node.getAttribute("data-since");
      if (since) node.textContent = C.duration(t - Number(since));
    }
  }

  // -- the socket -----------------------------------------------------------------------------
  const STORES = { agent: "agents", queue: "queues", campaign: "campaigns", call: "calls" };

  function apply(message) {
    live.offset = message.server_time - Date.now();
    const touched = new Set();
    if (message.type === "snapshot") {
      for (const kind of ["agents", "queues", "campaigns", "calls"]) {
        live[kind] = new Map(message[kind].map((x) => [String(x.id), x]));
        touched.add(kind);
      }
    } else {
      for (const item of message.items) {
        const store = STORES[item.kind];
        if (!store) continue;
        if (item.data === null) live[store].delete(item.id); else live[store].set(item.id, item.data);
        touched.add(store);
      }
    }
    if (touched.has("agents")) renderAgents();
    if (touched.has("queues")) renderQueues();
    if (touched.has("campaigns")) renderCampaigns();
    if (touched.has("calls") || touched.has("agents")) renderCalls();
    tick();
  }

  function connect() {
    conn.setAttribute("data-status", "connecting"); conn.textContent = "connecting…";
    socket = new WebSocket(C.socketUrl("/ws/wallboard"));
    socket.onopen = () => { retry = 0; conn.setAttribute("data-status", "live"); conn.textContent = "live"; };
    socket.onmessage = (event) => apply(JSON.parse(event.data));
    socket.onclose = (event) => {
      conn.setAttribute("data-status", "lost"); conn.textContent = "reconnecting…";
      if (event.code === 4401) { window.location.href = "/login?next=/wallboard"; return; }
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, 1000 * retry);
    };
  }

  setInterval(tick, 1000);
  connect();
})();
