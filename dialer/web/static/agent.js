/* Agent page: own state live over /ws/agent; the page reloads when a new call connects. */
"use strict";
(function () {
  const C = window.Console;
  const page = document.getElementById("agent-page");
  if (!page) return;
  const chip = document.getElementById("my-state");
  const timer = document.getElementById("my-timer");
  const reason = document.getElementById("my-reason");
  let offset = 0, retry = 0;
  const shownCall = page.getAttribute("data-call-id") || "";

  function tick() {
    const since = Number(timer.getAttribute("data-since"));
    timer.textContent = since ? C.duration(Date.now() + offset - since) : "";
  }

  function show(agent) {
    chip.className = "chip big state-" + agent.state;
    chip.setAttribute("data-state", agent.state);
    chip.textContent = agent.state.replace("_", " ");
    timer.setAttribute("data-since", agent.since);
    reason.textContent = agent.reason || "";
    // A new customer: reload so the server renders their details, history and codes.
    if (agent.call_id && agent.call_id !== shownCall && (agent.state === "on_call" || agent.state === "wrap_up")) {
      window.location.reload();
    }
    tick();
  }

  function connect() {
    const socket = new WebSocket(C.socketUrl("/ws/agent"));
    socket.onopen = () => { retry = 0; };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      offset = message.server_time - Date.now();
      const agents = message.type === "snapshot" ? message.agents : message.items.map((i) => i.data).filter(Boolean);
      for (const agent of agents) show(agent);
    };
    socket.onclose = (event) => {
      if (event.code === 4401) { window.location.href = "/login?next=/agent"; return; }
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, 1000 * retry);
    };
  }
  // Call controls: hang up, recording (start/pause/resume) and ACD callbacks, through the JSON API.
  const status = document.getElementById("call-controls-status");
  function say(text, failed) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("error", Boolean(failed));
  }
  for (const button of document.querySelectorAll("[data-agent-action]")) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const result = await C.api("POST", button.getAttribute("data-agent-action"));
        say(result.state ? "Recording: " + result.state : (result.message || "done"), false);
      } catch (error) {
        say(error.message, true);
      } finally {
        button.disabled = false;
      }
    });
  }
  const callbackForm = document.getElementById("acd-callback-form");
  if (callbackForm) {
    callbackForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = new FormData(callbackForm);
      const body = { number: form.get("number"), at: form.get("at") };
      if (form.get("queue")) body.queue = form.get("queue");
      try {
        const result = await C.api("POST", "/api/agent/acd-callback", body);
        say("Callback " + result.callback_id + " at " + result.at_utc, false);
        callbackForm.reset();
      } catch (error) {
        say(error.message, true);
      }
    });
  }

  setInterval(tick, 1000);
  connect();
})();
