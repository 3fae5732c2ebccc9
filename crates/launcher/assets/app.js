// The dashboard: chat over the launcher's /pico/ws proxy (protocol 2: streamed answers,
// replay on reconnect), past chats from the history API, gateway status and control, the
// tokens panel and first-run token setup. Talks only to this origin, and builds every URL
// relative to the page (see `here`), so the dashboard also works under a path prefix.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const md = window.PicoMarkdown;
  // A one-time login link opened while already logged in is redirected here with its
  // fragment (#code=…): drop it from the address bar (the unused code expires by itself).
  if (location.hash.includes("code=")) history.replaceState(null, "", location.pathname + location.search);

  // ---------- URLs, requests, leaving ----------
  // Every request URL, relative to the document: no leading "/", so a dashboard served
  // under a prefix (https://host/picoclaw/) stays under it.
  function here(path) {
    return new URL(path, document.baseURI);
  }
  function socketUrl(path) {
    const url = here(path);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url;
  }

  let leaving = false;
  const inflight = new Set();
  let pollTimer = null;

  // Stops every timer, request and socket: after a logout or an ended session nothing may
  // go on asking (each would be a 401 in the console).
  function stopAll() {
    leaving = true;
    clearInterval(pollTimer);
    clearTimeout(retryTimer);
    for (const c of inflight) c.abort();
    inflight.clear();
    if (socket) { const s = socket; socket = null; s.close(1000, "leaving"); }
  }
  function toLogin(reason) {
    stopAll();
    location.replace(here("login?" + reason + "=1").href);
  }

  function errorText(data, status) {
    if (data && data.error && data.error.message) return data.error.message;
    return "Request failed (HTTP " + status + ").";
  }

  async function api(method, path, body) {
    if (leaving) return { ok: false, status: 0, data: null, error: "Leaving." };
    const ctl = new AbortController();
    inflight.add(ctl);
    let resp;
    try {
      resp = await fetch(here(path), {
        method,
        credentials: "same-origin",
        signal: ctl.signal,
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      inflight.delete(ctl);
      return { ok: false, status: 0, data: null, error: leaving ? "Leaving." : "Cannot reach the launcher. Is it still running?" };
    }
    inflight.delete(ctl);
    if (resp.status === 401) {
      toLogin("expired");
      return { ok: false, status: 401, data: null, error: "Your session ended; please log in again." };
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    return { ok: resp.ok, status: resp.status, data, error: resp.ok ? null : errorText(data, resp.status) };
  }

  // ---------- views ----------
  const views = ["chat", "gateway", "tokens", "pair"];
  function showView(name) {
    if (!$("view-" + name)) name = "chat";
    for (const section of document.querySelectorAll(".view")) section.classList.toggle("hidden", section.id !== "view-" + name);
    for (const tab of document.querySelectorAll("#nav .tab")) {
      if (tab.dataset.view === name) tab.setAttribute("aria-current", "page"); else tab.removeAttribute("aria-current");
    }
    if (name === "tokens") refreshTokens();
    if (name === "pair") suggestPairUrl();
    if (name === "chat") scrollToEnd(true);
  }
  $("nav").addEventListener("click", (event) => {
    const tab = event.target.closest(".tab");
    if (!tab) return;
    history.replaceState(null, "", "#" + tab.dataset.view);
    showView(tab.dataset.view);
  });
  window.addEventListener("hashchange", () => showView(location.hash.slice(1)));

  // ---------- gateway ----------
  const stateLabels = { running: "Running", starting: "Starting…", stopping: "Stopping…", restarting: "Restarting…", stopped: "Stopped", error: "Failed" };
  let gatewayState = "unknown";
  let gatewayUrl = null;
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
    gatewayUrl = g.url || gatewayUrl;
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
    if (previous === "running" && (g.state === "restarting" || g.state === "stopping") && socket) {
      chatState(g.state === "restarting" ? "The gateway is restarting; reconnecting when it is back…" : "The gateway is stopping…", "muted");
    }
    if (previous !== "unknown" && previous !== "running" && g.state === "running") {
      openChat();
      refreshSessions();
    }
    if (g.state !== "running" && !socket) chatState("The gateway is not running. Start it to chat.", "down");
  }

  async function refreshGateway() {
    const r = await api("GET", "api/gateway/status");
    if (r.ok) renderGateway(r.data);
    else if (r.status !== 401 && !leaving) $("gw-state").textContent = "Unknown: " + r.error;
    if (!leaving && $("gw-logs-box").open) refreshLogs();
  }

  async function refreshLogs() {
    const r = await api("GET", "api/gateway/logs");
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
    const r = await api("POST", "api/gateway/" + action);
    busy = false;
    if (r.ok) {
      $("gw-msg").textContent = action === "stop" ? (r.data.status === "ok" ? "Gateway stopped." : "The gateway was not running.") : "Gateway " + (action === "start" ? "started." : "restarted.");
      renderGateway(r.data.gateway);
      if (action !== "stop") openChat();
    } else if (!leaving) {
      $("gw-msg").textContent = r.error;
      $("gw-msg").className = "msg error";
      refreshGateway();
    }
  }

  $("gw-start").addEventListener("click", () => control("start", "Starting…"));
  $("gw-stop").addEventListener("click", () => control("stop", "Stopping…"));
  $("gw-restart").addEventListener("click", () => control("restart", "Restarting…"));
  $("gw-logs-box").addEventListener("toggle", () => { if ($("gw-logs-box").open) refreshLogs(); });

  // ---------- chat: messages and scrolling ----------
  const log = $("messages");
  let stick = true; // follow new messages unless the user scrolled up
  const bubbles = new Map(); // message_id -> bubble
  const pending = new Map(); // bubble -> text waiting for the next frame
  let renderQueued = false;

  function atEnd() {
    return log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
  }
  function scrollToEnd(force) {
    if (force) stick = true;
    if (stick) log.scrollTop = log.scrollHeight;
    $("jump").classList.toggle("hidden", stick || atEnd());
  }
  log.addEventListener("scroll", () => {
    stick = atEnd();
    if (stick) $("jump").classList.add("hidden");
  });
  $("jump").addEventListener("click", () => scrollToEnd(true));
  // A resized window (a phone turned, the keyboard opening) keeps the newest message in view.
  new ResizeObserver(() => scrollToEnd(false)).observe(log);

  function fill(bubble, text) {
    if (bubble.dataset.md === "1") bubble.replaceChildren(md.render(text));
    else bubble.textContent = text;
    bubble.dataset.text = text;
  }

  // Streamed updates re-render the whole answer (the frames carry the full text so far),
  // at most once per animation frame.
  function setText(bubble, text) {
    pending.set(bubble, text);
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      for (const [b, t] of pending) fill(b, t);
      pending.clear();
      scrollToEnd(false);
    });
  }

  function addBubble(kind, text, id) {
    const div = document.createElement("div");
    div.className = "msg-bubble msg-" + kind;
    div.dataset.md = kind === "bot" || kind === "thought" ? "1" : "0";
    fill(div, text);
    log.appendChild(div);
    if (id) bubbles.set(id, div);
    scrollToEnd(kind === "me");
    return div;
  }

  function clearMessages() {
    bubbles.clear();
    pending.clear();
    log.replaceChildren();
    stick = true;
  }

  // ---------- chat: sessions ----------
  const SESSION_KEY = "picoclaw-chat-session";
  function newSessionId() {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    return "dashboard-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  let chatSession = localStorage.getItem(SESSION_KEY);
  if (!/^dashboard-[0-9a-z]{1,64}$/.test(chatSession || "")) chatSession = newSessionId();
  localStorage.setItem(SESSION_KEY, chatSession);
  let lastSeq = 0;
  let sessions = [];
  let historyLoaded = false;

  function titleOf(id) {
    const s = sessions.find((x) => x.id === id);
    return s ? s.title : "New chat";
  }

  function renderSessions() {
    const list = $("session-list");
    list.replaceChildren();
    // Chats never written in (opened, then left) are not listed, except the current one.
    const shown = sessions.filter((s) => s.messages > 0 || s.id === chatSession);
    if (!shown.some((s) => s.id === chatSession)) shown.unshift({ id: chatSession, title: "New chat", messages: 0 });
    for (const s of shown) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "session" + (s.id === chatSession ? " active" : "");
      b.textContent = s.title || "New chat";
      b.title = s.title || "New chat";
      b.dataset.id = s.id;
      if (s.id === chatSession) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => switchSession(s.id));
      li.appendChild(b);
      list.appendChild(li);
    }
    $("chat-title").textContent = titleOf(chatSession);
  }

  async function refreshSessions() {
    const r = await api("GET", "api/chat/sessions");
    if (r.ok) {
      sessions = r.data.sessions || [];
      $("sessions-msg").textContent = "";
    } else if (!leaving && r.status !== 401) {
      $("sessions-msg").textContent = r.status === 503 ? "Start the gateway to see past chats." : r.error;
    }
    renderSessions();
  }

  // Loads the stored history of the current session, page by page (oldest first).
  async function loadHistory() {
    const id = chatSession;
    let after = 0;
    const pages = 50; // at most 50 × 200 messages
    for (let n = 0; n < pages; n++) {
      const r = await api("GET", "api/chat/sessions/" + encodeURIComponent(id) + "/messages?after_seq=" + after + "&limit=200");
      if (id !== chatSession) return false;
      if (!r.ok) return r.status === 404; // a new chat has no history yet
      for (const m of r.data.messages || []) {
        const kind = m.role === "user" ? "me" : "bot";
        if (m.message_id && bubbles.has(m.message_id)) fill(bubbles.get(m.message_id), m.content || "");
        else addBubble(kind, m.content || "", m.message_id);
        lastSeq = Math.max(lastSeq, m.seq || 0);
      }
      if (r.data.next_after_seq === null || r.data.next_after_seq === undefined) break;
      after = r.data.next_after_seq;
    }
    return true;
  }

  async function switchSession(id) {
    $("sessions").classList.remove("open");
    $("sessions-toggle").setAttribute("aria-expanded", "false");
    if (id === chatSession && historyLoaded) return;
    chatSession = id;
    localStorage.setItem(SESSION_KEY, id);
    lastSeq = 0;
    historyLoaded = false;
    wasConnected = false;
    clearMessages();
    renderSessions();
    if (socket) { const s = socket; socket = null; s.close(1000, "switching chats"); }
    $("chat-send").disabled = true;
    $("typing").classList.add("hidden");
    chatState("Connecting…");
    await openChat();
  }

  // Shows the current chat: its stored history first (once), then the live socket, which
  // asks for a replay of anything after the last stored message (protocol 2 `last_seq`).
  async function openChat() {
    const id = chatSession;
    if (!historyLoaded && gatewayState === "running") {
      const done = await loadHistory();
      if (id !== chatSession) return;
      historyLoaded = done;
    }
    scrollToEnd(true);
    connectChat(true);
  }

  $("new-chat").addEventListener("click", () => switchSession(newSessionId()));
  $("sessions-toggle").addEventListener("click", () => {
    const open = $("sessions").classList.toggle("open");
    $("sessions-toggle").setAttribute("aria-expanded", open ? "true" : "false");
  });

  // ---------- chat: the socket ----------
  let socket = null;
  let retry = 0;
  let retryTimer = null;
  // Whether this chat's socket was open once: a new socket after that is a reconnect,
  // whichever path (a retry, the gateway coming back) opens it.
  let wasConnected = false;

  function chatState(text, kind) {
    $("chat-state").textContent = text;
    $("chat-state").className = "conn " + (kind || "muted");
    $("chat-retry").classList.toggle("hidden", kind !== "reconnecting");
  }

  function onFrame(frame) {
    const p = frame.payload || {};
    if (typeof p.seq === "number") lastSeq = Math.max(lastSeq, p.seq);
    const thought = p.kind === "thought" || p.thought === true;
    switch (frame.type) {
      case "typing.start": $("typing").classList.remove("hidden"); break;
      case "typing.stop": $("typing").classList.add("hidden"); break;
      case "message.create":
      case "message.update": {
        const b = p.message_id && bubbles.get(p.message_id);
        if (b) setText(b, p.content || "");
        else {
          const nb = addBubble(thought ? "thought" : "bot", p.content || "", p.message_id);
          nb.classList.add("streaming");
          if (Array.isArray(p.attachments)) addFiles(nb, p.attachments);
        }
        break;
      }
      case "message.delete": {
        const b = p.message_id && bubbles.get(p.message_id);
        if (b) { b.remove(); bubbles.delete(p.message_id); }
        break;
      }
      case "message.done": {
        const b = p.message_id && bubbles.get(p.message_id);
        if (b) b.classList.remove("streaming");
        for (const t of log.querySelectorAll(".streaming")) t.classList.remove("streaming");
        refreshSessions();
        break;
      }
      case "error":
        if (p.code === "replay_gap") { switchSession(chatSession); break; }
        addBubble("error", p.message || "The gateway reported an error.");
        break;
      default: break;
    }
  }

  function connectChat(now) {
    if (leaving) return;
    if (socket && (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(retryTimer);
    if (!now && !["running", "starting", "restarting"].includes(gatewayState)) {
      chatState("The gateway is not running. Start it to chat.", "down");
      return;
    }
    chatState(retry || wasConnected ? "Reconnecting…" : "Connecting…", retry ? "reconnecting" : "muted");
    const url = socketUrl("pico/ws");
    url.searchParams.set("session_id", chatSession);
    url.searchParams.set("protocol", "2");
    if (lastSeq > 0) url.searchParams.set("last_seq", String(lastSeq));
    const ws = new WebSocket(url.href);
    socket = ws;
    ws.addEventListener("open", () => {
      if (socket !== ws) return;
      retry = 0;
      wasConnected = true;
      chatState("Connected", "ok");
      $("chat-send").disabled = false;
    });
    ws.addEventListener("message", (event) => {
      if (socket !== ws) return;
      let frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; /* not JSON: ignore */ }
      onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return; // replaced on purpose (switch, logout)
      socket = null;
      $("chat-send").disabled = true;
      $("typing").classList.add("hidden");
      if (leaving) return;
      if (event.code === 1008 && event.reason && /session/i.test(event.reason)) { toLogin("expired"); return; }
      if (event.code === 4004) { switchSession(newSessionId()); return; }
      refreshGateway().then(() => {
        if (leaving) return;
        if (!["running", "starting", "restarting"].includes(gatewayState)) {
          chatState("The gateway is not running. Start it to chat.", "down");
          return;
        }
        // Exponential backoff with jitter: 1, 2, 4, 8, 16, 30 s.
        retry = Math.min(retry + 1, 6);
        const wait = Math.min(30000, 1000 * Math.pow(2, retry - 1)) * (0.8 + Math.random() * 0.4);
        chatState("Disconnected; reconnecting in " + Math.max(1, Math.round(wait / 1000)) + " s…", "reconnecting");
        retryTimer = setTimeout(() => connectChat(false), wait);
      });
    });
  }
  $("chat-retry").addEventListener("click", () => { clearTimeout(retryTimer); connectChat(true); });

  // ---------- chat: images to send ----------
  // Inline data URLs, as upstream's web UI sends them; the launcher relays frames up to
  // 1 MiB, so each image is at most 700 KiB (its base64 fits) and four go at most.
  const MAX_IMAGE = 700 * 1024;
  const MAX_IMAGES = 4;
  let outgoing = [];
  function renderOutgoing() {
    const box = $("chat-files");
    box.replaceChildren(...outgoing.map((f, i) => {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip ghost";
      chip.textContent = f.name + " ✕";
      chip.title = "Remove " + f.name;
      chip.addEventListener("click", () => { outgoing.splice(i, 1); renderOutgoing(); });
      return chip;
    }));
    box.classList.toggle("hidden", outgoing.length === 0);
  }
  $("chat-image").addEventListener("change", (event) => {
    const files = Array.from(event.target.files || []);
    event.target.value = "";
    for (const file of files) {
      if (outgoing.length >= MAX_IMAGES) { addBubble("error", "At most " + MAX_IMAGES + " images per message."); break; }
      if (file.size > MAX_IMAGE) { addBubble("error", file.name + " is larger than 700 KiB."); continue; }
      const reader = new FileReader();
      reader.onload = () => { outgoing.push({ name: file.name, url: String(reader.result) }); renderOutgoing(); };
      reader.readAsDataURL(file);
    }
  });

  // Files of an answer: only the gateway's own /pico/media/<hex id> links, fetched through
  // the launcher under its base path; images shown, anything else offered as a download.
  const MEDIA_URL = /^\/pico\/media\/([0-9a-f]{1,64})$/;
  function addFiles(bubble, attachments) {
    const box = document.createElement("div");
    box.className = "msg-files";
    for (const a of attachments) {
      const m = typeof a.url === "string" && a.url.match(MEDIA_URL);
      if (!m) continue;
      const href = here("pico/media/" + m[1]);
      const name = typeof a.filename === "string" ? a.filename : "file";
      if (a.type === "image") {
        const img = document.createElement("img");
        img.src = href;
        img.alt = name;
        box.appendChild(img);
      } else {
        const link = document.createElement("a");
        link.href = href;
        link.download = name;
        link.textContent = name;
        box.appendChild(link);
      }
    }
    if (box.childElementCount) bubble.appendChild(box);
  }
  function addImages(bubble, urls) {
    const box = document.createElement("div");
    box.className = "msg-files";
    for (const url of urls) {
      const img = document.createElement("img");
      img.src = url;
      img.alt = "attached image";
      box.appendChild(img);
    }
    bubble.appendChild(box);
  }

  function send() {
    const input = $("chat-input");
    const text = input.value.trim();
    const images = outgoing.map((f) => f.url);
    if (!text && images.length === 0) return;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      chatState("Not connected to the gateway.", "down");
      return;
    }
    const id = "m" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
    const payload = images.length ? { content: text, media: images } : { content: text };
    socket.send(JSON.stringify({ type: "message.send", id, session_id: chatSession, payload }));
    const mine = addBubble("me", text);
    if (images.length) addImages(mine, images);
    outgoing = [];
    renderOutgoing();
    input.value = "";
    grow();
    if (!sessions.some((s) => s.id === chatSession)) {
      sessions.unshift({ id: chatSession, title: (text || "Image").split(/\s+/).join(" ").slice(0, 60), messages: 1 });
      renderSessions();
    }
  }
  function grow() {
    const input = $("chat-input");
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 160) + "px";
    input.style.overflowY = input.scrollHeight > 160 ? "auto" : "hidden";
  }
  $("chat-form").addEventListener("submit", (event) => { event.preventDefault(); send(); });
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); send(); }
  });
  $("chat-input").addEventListener("input", grow);

  // ---------- tokens ----------
  function cell(row, label, content, cls) {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (typeof content === "string") td.textContent = content; else td.appendChild(content);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function acceptedOn(c) {
    const list = c.accepted_on || [];
    if (!list.length) {
      const span = document.createElement("span");
      span.textContent = c.note || "–";
      return span;
    }
    const d = document.createElement("details");
    const s = document.createElement("summary");
    s.textContent = list.length === 1 ? "1 endpoint" : list.length + " endpoints";
    const ul = document.createElement("ul");
    ul.className = "endpoints";
    for (const e of list) {
      const li = document.createElement("li");
      li.textContent = e;
      ul.appendChild(li);
    }
    d.append(s, ul);
    return d;
  }

  function headRow(table, names) {
    const head = table.createTHead().insertRow();
    for (const h of names) {
      const th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    }
  }

  async function refreshTokens() {
    const r = await api("GET", "api/tokens");
    if (leaving) return;
    const box = $("tokens");
    if (!r.ok) {
      box.textContent = r.error;
      box.className = "msg error";
      return;
    }
    const table = document.createElement("table");
    table.className = "tokens";
    headRow(table, ["Credential", "Source", "Fingerprint", "Accepted on", ""]);
    const body = table.createTBody();
    for (const c of r.data.credentials || []) {
      const row = body.insertRow();
      cell(row, "Credential", c.name, "name");
      cell(row, "Source", c.set ? (c.source || "set") : "not set", c.set ? "source" : "source muted");
      cell(row, "Fingerprint", c.fingerprint || "–", "mono");
      cell(row, "Accepted on", acceptedOn(c));
      const td = cell(row, "", "", "actions-cell");
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
              tokenAction("POST", "api/tokens/" + fixed + "/rotate", { grace: "10m" }, $("named"));
            }
          });
        }
        td.appendChild(rotate);
      } else {
        td.classList.add("empty");
      }
    }
    box.className = "table-box";
    box.replaceChildren(table);
    const named = $("named");
    named.replaceChildren();
    if (r.data.management) {
      renderNamed(named, r.data.named);
    } else {
      named.textContent = "Creating, rotating and revoking named tokens from the dashboard needs a running gateway with the token API; until then this list is read-only.";
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
    code.className = "secret-once";
    code.textContent = value;
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "ghost";
    copy.textContent = "Copy";
    copy.addEventListener("click", async () => { copy.textContent = (await md.copyText(value)) ? "Copied" : "Copy failed"; });
    p.append(code, " ", copy);
    box.prepend(p);
  }

  async function tokenAction(method, path, body, box) {
    const r = await api(method, path, body);
    if (leaving) return;
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
      const wrap = document.createElement("div");
      wrap.className = "table-box";
      const table = document.createElement("table");
      table.className = "tokens";
      headRow(table, ["Name", "Scope", "Fingerprint", "Expires", ""]);
      const body = table.createTBody();
      for (const t of list) {
        const row = body.insertRow();
        cell(row, "Name", t.name || t.id || "?", "name");
        cell(row, "Scope", t.scope || "–");
        cell(row, "Fingerprint", t.fingerprint || "–", "mono");
        cell(row, "Expires", t.expires ? t.expires : "never");
        const td = cell(row, "", "", "actions-cell");
        const id = encodeURIComponent(t.id || t.name);
        const rotate = document.createElement("button");
        rotate.type = "button";
        rotate.className = "ghost";
        rotate.textContent = "Rotate";
        rotate.addEventListener("click", () => tokenAction("POST", "api/tokens/" + id + "/rotate", {}, box));
        const revoke = document.createElement("button");
        revoke.type = "button";
        revoke.className = "danger";
        revoke.textContent = "Revoke";
        revoke.addEventListener("click", () => {
          if (confirm("Revoke " + (t.name || t.id) + "? Clients using it stop working at once.")) tokenAction("DELETE", "api/tokens/" + id, undefined, box);
        });
        td.append(rotate, revoke);
      }
      wrap.appendChild(table);
      box.appendChild(wrap);
    }
    const form = document.createElement("form");
    form.className = "inline-form";
    const name = document.createElement("input");
    name.placeholder = "New token name, e.g. phone";
    name.setAttribute("aria-label", "New token name");
    name.required = true;
    const scope = document.createElement("select");
    scope.setAttribute("aria-label", "Scope");
    for (const s of ["chat", "read", "admin"]) {
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
      tokenAction("POST", "api/tokens", { name: name.value.trim(), scope: scope.value }, box);
    });
    box.appendChild(form);
  }

  // ---------- pairing ----------
  // The device opens the gateway itself, so the link points at the gateway: by default
  // at this page's host name with the gateway's port (right when the dashboard is opened
  // by the machine's address and the gateway listens there too).
  function isLoopback(host) {
    return host === "localhost" || host.startsWith("127.") || host === "[::1]";
  }
  function suggestPairUrl() {
    const input = $("pair-url");
    if (!input.value) {
      let port = "18790";
      try { if (gatewayUrl) port = new URL(gatewayUrl).port || port; } catch (e) { /* keep the default */ }
      const page = here("");
      input.value = page.protocol + "//" + page.hostname + ":" + port;
    }
    let host = "";
    try { host = new URL(input.value).hostname; } catch (e) { host = ""; }
    $("pair-url-hint").textContent = isLoopback(host)
      ? "A phone cannot open this machine's loopback address: enter the address the device reaches the gateway at (the gateway must listen there: gateway.host)."
      : "The address the device reaches the gateway at.";
  }
  $("pair-url").addEventListener("input", suggestPairUrl);
  let pairTimer = null;
  $("pair-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const msg = $("pair-msg");
    $("pair-create").disabled = true;
    msg.textContent = "Asking the gateway for a code…";
    msg.className = "msg";
    const r = await api("POST", "api/pair", {
      name: $("pair-name").value.trim(),
      scope: $("pair-scope").value,
      ttl: $("pair-ttl").value,
      public_url: $("pair-url").value.trim(),
    });
    $("pair-create").disabled = false;
    if (leaving) return;
    if (!r.ok) {
      msg.textContent = r.error;
      msg.className = "msg error";
      $("pair-result").classList.add("hidden");
      return;
    }
    msg.textContent = "Link ready for “" + r.data.name + "” (" + r.data.scope + "). It works once.";
    msg.className = "msg ok";
    $("pair-link").textContent = r.data.link;
    if (r.data.qr_svg) $("pair-qr").src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(r.data.qr_svg);
    $("pair-qr").classList.toggle("hidden", !r.data.qr_svg);
    $("pair-result").classList.remove("hidden");
    $("pair-result").scrollIntoView({ block: "nearest" });
    const link = r.data.link;
    $("pair-copy").onclick = async () => { $("pair-copy").textContent = (await md.copyText(link)) ? "Copied" : "Copy failed"; };
    const expires = r.data.expires_at * 1000;
    if (pairTimer) clearInterval(pairTimer);
    const tick = () => {
      const left = Math.round((expires - Date.now()) / 1000);
      if (left <= 0) {
        $("pair-expiry").textContent = "This link has expired. Create a new one.";
        $("pair-result").classList.add("expired");
        clearInterval(pairTimer);
        return;
      }
      $("pair-result").classList.remove("expired");
      $("pair-expiry").textContent = "Expires in " + duration(left) + ".";
    };
    tick();
    pairTimer = setInterval(tick, 1000);
  });

  // ---------- session, setup, logout ----------
  async function refreshSession() {
    const r = await api("GET", "api/session");
    if (!r.ok) return;
    $("setup-min").textContent = r.data.min_token_length;
    const hidden = sessionStorage.getItem("picoclaw-setup-hidden") === "1";
    const offer = r.data.token_source === "random" && r.data.setup_allowed;
    $("setup-card").classList.toggle("hidden", !offer);
    $("setup-hint").classList.toggle("hidden", !offer || hidden);
  }

  $("setup-open").addEventListener("click", () => {
    history.replaceState(null, "", "#tokens");
    showView("tokens");
    $("setup-token").focus();
  });
  $("setup-hide").addEventListener("click", () => {
    sessionStorage.setItem("picoclaw-setup-hidden", "1");
    $("setup-card").classList.add("hidden");
    $("setup-hint").classList.add("hidden");
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
    const r = await api("POST", "setup", { token, confirm });
    $("setup-save").disabled = false;
    if (r.ok) {
      $("setup-token").value = "";
      $("setup-confirm").value = "";
      msg.textContent = "Saved. Use the new token from now on (fingerprint " + r.data.fingerprint + ").";
      msg.className = "msg ok";
      $("setup-hint").classList.add("hidden");
      refreshTokens();
    } else if (!leaving) {
      msg.textContent = r.error;
      msg.className = "msg error";
    }
  });

  // Other tabs of this dashboard hear of a logout at once and leave too, before their next
  // poll would meet the ended session.
  const tabs = "BroadcastChannel" in window ? new BroadcastChannel("picoclaw-dashboard") : null;
  if (tabs) tabs.addEventListener("message", (event) => { if (event.data === "logged-out") toLogin("logged_out"); });

  $("logout").addEventListener("click", async () => {
    $("logout").disabled = true;
    stopAll();
    if (tabs) tabs.postMessage("logged-out");
    try {
      await fetch(here("logout"), { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: "{}" });
    } catch (e) { /* the cookie is cleared server-side or expires */ }
    location.replace(here("login?logged_out=1").href);
  });

  showView(location.hash.slice(1) || "chat");
  grow();
  renderSessions();
  refreshSession();
  refreshGateway().then(() => {
    refreshSessions();
    if (gatewayState === "running") openChat(); else connectChat(false);
  });
  pollTimer = setInterval(() => { if (!leaving) refreshGateway(); }, 3000);
  void views;
})();
