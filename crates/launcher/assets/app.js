// The dashboard: gateway status and control, chat over the launcher's /pico/ws proxy,
// the tokens panel and first-run token setup. Talks only to this origin.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  // Every URL is resolved against the page, so the dashboard works under any base path
  // (a reverse proxy's /picoclaw/): "/api/x" and "api/x" both mean <page dir>/api/x.
  const here = (path) => new URL(path.replace(/^\//, ""), document.baseURI);
  const banner = $("banner");

  function showBanner(text, kind) {
    banner.textContent = text;
    banner.className = "banner " + (kind || "error");
  }
  function clearBanner() {
    banner.className = "banner hidden";
    banner.textContent = "";
  }
  function errorText(data, status) {
    if (data && data.error && data.error.message) return data.error.message;
    return "Request failed (HTTP " + status + ").";
  }

  async function api(method, path, body) {
    let resp;
    try {
      resp = await fetch(here(path), {
        method,
        credentials: "same-origin",
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      return { ok: false, status: 0, data: null, error: "Cannot reach the launcher. Is it still running?" };
    }
    if (resp.status === 401) {
      location.replace(here("login"));
      return { ok: false, status: 401, data: null, error: "Your session ended; please log in again." };
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    return { ok: resp.ok, status: resp.status, data, error: resp.ok ? null : errorText(data, resp.status) };
  }

  // ---------- gateway ----------
  const stateLabels = { running: "Running", starting: "Starting…", stopping: "Stopping…", restarting: "Restarting…", stopped: "Stopped", error: "Failed" };
  let gatewayState = "unknown";
  let busy = false;

  function duration(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    const h = Math.floor(s / 3600);
    return h + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function renderGateway(g) {
    const previous = gatewayState;
    gatewayState = g.state;
    $("gw-state").textContent = stateLabels[g.state] || g.state;
    $("gw-state").className = "state-" + g.state;
    $("gw-badge").textContent = "Gateway: " + (stateLabels[g.state] || g.state);
    $("gw-badge").className = "badge state-" + g.state;
    $("gw-pid").textContent = g.pid || "–";
    $("gw-version").textContent = g.version || "–";
    $("gw-url").textContent = g.url || "–";
    $("gw-uptime").textContent = duration(g.uptime_s);
    $("gw-owned").textContent = g.state === "running" ? (g.owned ? "this launcher" : "another process (adopted)") : "–";
    if (!busy) {
      $("gw-start").disabled = g.state === "running" || g.state === "starting";
      $("gw-stop").disabled = g.state !== "running";
      $("gw-restart").disabled = g.state !== "running";
    }
    if (g.error && !busy) {
      $("gw-msg").textContent = g.error;
      $("gw-msg").className = "msg error";
    }
    if (previous !== "running" && g.state === "running") connectChat(true);
  }

  async function refreshGateway() {
    const r = await api("GET", "/api/gateway/status");
    if (r.ok) renderGateway(r.data);
    else if (r.status !== 401) $("gw-state").textContent = "Unknown: " + r.error;
    if ($("gw-logs-box").open) refreshLogs();
  }

  async function refreshLogs() {
    const r = await api("GET", "/api/gateway/logs");
    if (r.ok) {
      const lines = r.data.lines || [];
      $("gw-logs").textContent = lines.length ? lines.join("\n") : "No output yet.";
    }
  }

  async function control(action, pending) {
    busy = true;
    for (const id of ["gw-start", "gw-stop", "gw-restart"]) $(id).disabled = true;
    $("gw-msg").textContent = pending;
    $("gw-msg").className = "msg";
    $("gw-state").textContent = pending;
    const r = await api("POST", "/api/gateway/" + action);
    busy = false;
    if (r.ok) {
      $("gw-msg").textContent = action === "stop" ? (r.data.status === "ok" ? "Gateway stopped." : "The gateway was not running.") : "Gateway " + (action === "start" ? "started." : "restarted.");
      renderGateway(r.data.gateway);
      if (action !== "stop") connectChat(true);
    } else {
      $("gw-msg").textContent = r.error;
      $("gw-msg").className = "msg error";
      refreshGateway();
    }
  }

  $("gw-start").addEventListener("click", () => control("start", "Starting…"));
  $("gw-stop").addEventListener("click", () => control("stop", "Stopping…"));
  $("gw-restart").addEventListener("click", () => control("restart", "Restarting…"));
  $("gw-logs-box").addEventListener("toggle", () => { if ($("gw-logs-box").open) refreshLogs(); });

  // ---------- chat ----------
  let socket = null;
  let retry = 0;
  let retryTimer = null;
  const bubbles = new Map();
  let chatSession = sessionStorage.getItem("picoclaw-chat-session");
  if (!chatSession) {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    chatSession = "dashboard-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("picoclaw-chat-session", chatSession);
  }

  function chatState(text, kind) {
    $("chat-state").textContent = text;
    $("chat-state").className = kind || "muted";
  }

  function addBubble(kind, text, id) {
    const div = document.createElement("div");
    div.className = "msg-bubble msg-" + kind;
    div.textContent = text;
    $("messages").appendChild(div);
    $("messages").scrollTop = $("messages").scrollHeight;
    if (id) bubbles.set(id, div);
    return div;
  }

  function onFrame(frame) {
    const p = frame.payload || {};
    switch (frame.type) {
      case "typing.start": $("typing").className = "typing"; break;
      case "typing.stop": $("typing").className = "typing hidden"; break;
      case "message.create": {
        if (p.message_id && bubbles.has(p.message_id)) bubbles.get(p.message_id).textContent = p.content || "";
        else addBubble("bot", p.content || "", p.message_id);
        break;
      }
      case "message.update": {
        const b = p.message_id && bubbles.get(p.message_id);
        if (b) b.textContent = p.content || ""; else addBubble("bot", p.content || "", p.message_id);
        $("messages").scrollTop = $("messages").scrollHeight;
        break;
      }
      case "message.delete": {
        const b = p.message_id && bubbles.get(p.message_id);
        if (b) { b.remove(); bubbles.delete(p.message_id); }
        break;
      }
      case "error": addBubble("error", p.message || "The gateway reported an error."); break;
      default: break;
    }
  }

  function connectChat(now) {
    if (socket && (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(retryTimer);
    if (!now && gatewayState !== "running") {
      chatState("The gateway is not running. Start it to chat.", "msg error");
      return;
    }
    chatState("Connecting…");
    const wsUrl = here("pico/ws?session_id=" + encodeURIComponent(chatSession));
    wsUrl.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(wsUrl);
    socket = ws;
    ws.addEventListener("open", () => {
      retry = 0;
      chatState("Connected", "ok");
      $("chat-send").disabled = false;
    });
    ws.addEventListener("message", (event) => {
      try { onFrame(JSON.parse(event.data)); } catch (e) { /* not JSON: ignore */ }
    });
    ws.addEventListener("close", (event) => {
      if (socket === ws) socket = null;
      $("chat-send").disabled = true;
      $("typing").className = "typing hidden";
      if (event.code === 1008) {
        chatState("Your dashboard session ended.", "msg error");
        location.replace(here("login"));
        return;
      }
      refreshGateway().then(() => {
        if (gatewayState !== "running") {
          chatState("The gateway is not running. Start it to chat.", "msg error");
          return;
        }
        retry = Math.min(retry + 1, 5);
        const wait = 500 * Math.pow(2, retry);
        chatState("Disconnected; reconnecting in " + Math.round(wait / 1000) + " s…", "msg error");
        retryTimer = setTimeout(() => connectChat(false), wait);
      });
    });
  }

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text) return;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      chatState("Not connected to the gateway.", "msg error");
      return;
    }
    const id = "m" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
    socket.send(JSON.stringify({ type: "message.send", id, session_id: chatSession, payload: { content: text } }));
    addBubble("me", text);
    input.value = "";
  });

  // ---------- tokens ----------
  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }

  async function refreshTokens() {
    const r = await api("GET", "/api/tokens");
    const box = $("tokens");
    if (!r.ok) {
      box.textContent = r.error;
      box.className = "msg error";
      return;
    }
    const table = document.createElement("table");
    table.className = "tokens";
    const head = table.createTHead().insertRow();
    for (const h of ["Credential", "Source", "Fingerprint", "Accepted on", ""]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const c of r.data.credentials || []) {
      const row = body.insertRow();
      cell(row, c.name);
      cell(row, c.set ? (c.source || "set") : "not set", c.set ? "" : "muted");
      cell(row, c.fingerprint || "–", "mono");
      cell(row, (c.accepted_on || []).join(", ") || c.note || "–");
      const td = document.createElement("td");
      const fixed = { "pico token": "pico", "gateway token": "gateway" }[c.name];
      if (fixed && c.set && r.data.management) {
        const rotate = document.createElement("button");
        rotate.type = "button";
        rotate.className = "ghost";
        rotate.textContent = "Rotate";
        if ((c.source || "").startsWith("env:")) {
          rotate.disabled = true;
          rotate.title = "Set by " + c.source.slice(4) + ": change it where that variable is defined.";
        } else {
          rotate.title = "New value; the old one keeps working for 10 minutes.";
          rotate.addEventListener("click", () => {
            if (confirm("Rotate the " + c.name + "? Clients must switch to the new value within 10 minutes.")) {
              tokenAction("POST", "/api/tokens/" + fixed + "/rotate", { grace: "10m" }, $("named"));
            }
          });
        }
        td.appendChild(rotate);
      }
      row.appendChild(td);
    }
    box.className = "";
    box.replaceChildren(table);
    const named = $("named");
    named.replaceChildren();
    if (r.data.management) {
      renderNamed(named, r.data.named);
    } else {
      named.textContent = "Creating, rotating and revoking named tokens from the dashboard needs a gateway with the token API; until then this list is read-only.";
      named.className = "muted";
    }
    for (const w of r.data.warnings || []) {
      const p = document.createElement("p");
      p.className = "msg warn";
      p.textContent = w;
      named.appendChild(p);
    }
  }

  // Named tokens (through the launcher's forward to the gateway's /api/tokens).
  function showOnce(box, value) {
    const p = document.createElement("p");
    p.className = "msg ok";
    p.append("New token (shown only now; copy it): ");
    const code = document.createElement("code");
    code.textContent = value;
    p.appendChild(code);
    box.prepend(p);
  }

  async function tokenAction(method, path, body, box) {
    const r = await api(method, path, body);
    if (!r.ok) {
      const p = document.createElement("p");
      p.className = "msg error";
      p.textContent = r.error;
      box.prepend(p);
      return;
    }
    await refreshTokens();
    if (r.data && typeof r.data.token === "string") showOnce($("named"), r.data.token);
    else if (r.data && typeof r.data.token_shown === "string") {
      const p = document.createElement("p");
      p.className = "msg";
      p.textContent = "Rotated (fingerprint " + (r.data.fingerprint || "?") + "). The new value is not shown here: " + r.data.token_shown.replace(/^no: /, "") + ".";
      box.prepend(p);
    }
  }

  function renderNamed(box, named) {
    box.className = "";
    const list = Array.isArray(named) ? named : (named && Array.isArray(named.tokens) ? named.tokens : []);
    const h = document.createElement("h3");
    h.textContent = "Named tokens";
    box.appendChild(h);
    if (!list.length) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "No named tokens yet.";
      box.appendChild(p);
    } else {
      const table = document.createElement("table");
      table.className = "tokens";
      const body = table.createTBody();
      for (const t of list) {
        const row = body.insertRow();
        cell(row, t.name || t.id || "?");
        cell(row, t.scope || "–");
        cell(row, t.fingerprint || "–", "mono");
        cell(row, t.expires ? "expires " + t.expires : "no expiry");
        const td = document.createElement("td");
        const id = encodeURIComponent(t.id || t.name);
        const rotate = document.createElement("button");
        rotate.type = "button";
        rotate.className = "ghost";
        rotate.textContent = "Rotate";
        rotate.addEventListener("click", () => tokenAction("POST", "/api/tokens/" + id + "/rotate", {}, box));
        const revoke = document.createElement("button");
        revoke.type = "button";
        revoke.className = "danger";
        revoke.textContent = "Revoke";
        revoke.addEventListener("click", () => {
          if (confirm("Revoke " + (t.name || t.id) + "? Clients using it stop working at once.")) tokenAction("DELETE", "/api/tokens/" + id, undefined, box);
        });
        td.append(rotate, " ", revoke);
        row.appendChild(td);
      }
      box.appendChild(table);
    }
    const form = document.createElement("form");
    form.className = "chat-form";
    const name = document.createElement("input");
    name.placeholder = "New token name, e.g. phone";
    name.required = true;
    const scope = document.createElement("select");
    for (const s of ["chat", "admin"]) {
      const o = document.createElement("option");
      o.value = s;
      o.textContent = s;
      scope.appendChild(o);
    }
    const create = document.createElement("button");
    create.type = "submit";
    create.textContent = "Create";
    form.append(name, scope, create);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      tokenAction("POST", "/api/tokens", { name: name.value.trim(), scope: scope.value }, box);
    });
    box.appendChild(form);
  }

  // ---------- session, setup, logout ----------
  async function refreshSession() {
    const r = await api("GET", "/api/session");
    if (!r.ok) return;
    $("setup-min").textContent = r.data.min_token_length;
    const hidden = sessionStorage.getItem("picoclaw-setup-hidden") === "1";
    if (r.data.token_source === "random" && r.data.setup_allowed && !hidden) $("setup-card").className = "card";
  }

  $("setup-hide").addEventListener("click", () => {
    sessionStorage.setItem("picoclaw-setup-hidden", "1");
    $("setup-card").className = "card hidden";
  });

  $("setup-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("setup-token").value;
    const confirm = $("setup-confirm").value;
    const msg = $("setup-msg");
    if (token !== confirm) {
      msg.textContent = "The two entries differ.";
      msg.className = "msg error";
      return;
    }
    $("setup-save").disabled = true;
    msg.textContent = "Saving…";
    msg.className = "msg";
    const r = await api("POST", "/setup", { token, confirm });
    $("setup-save").disabled = false;
    if (r.ok) {
      $("setup-token").value = "";
      $("setup-confirm").value = "";
      msg.textContent = "Saved. Use the new token from now on (fingerprint " + r.data.fingerprint + ").";
      msg.className = "msg ok";
      refreshTokens();
    } else {
      msg.textContent = r.error;
      msg.className = "msg error";
    }
  });

  $("logout").addEventListener("click", async () => {
    $("logout").disabled = true;
    try {
      await fetch(here("logout"), { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: "{}" });
    } catch (e) { /* the cookie is cleared server-side or expires */ }
    if (socket) socket.close();
    location.replace(here("login"));
  });

  clearBanner();
  refreshSession();
  refreshGateway().then(() => connectChat(false));
  refreshTokens();
  setInterval(refreshGateway, 3000);
  void showBanner;
})();
