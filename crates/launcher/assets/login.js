// Login page: posts the token as JSON, shows clear errors, never puts the token in a URL.
// Every URL is relative to the page (no leading "/"), so it works under a path prefix.
"use strict";
(function () {
  const form = document.getElementById("login-form");
  const input = document.getElementById("token");
  const button = document.getElementById("login-btn");
  const msg = document.getElementById("login-msg");
  const notice = document.getElementById("login-notice");
  const here = (path) => new URL(path, document.baseURI);

  const reasons = {
    invalid: "That token is not right. Check it and try again.",
    rate_limited: "Too many failed attempts from this address. Wait a minute and try again.",
    missing: "The link had no token. Paste the launcher token below.",
  };
  const notices = {
    logged_out: "You are logged out.",
    expired: "Your dashboard session ended (the launcher restarted, the token changed or it expired). Please log in again.",
  };
  const params = new URLSearchParams(location.search);
  for (const [key, text] of Object.entries(notices)) {
    if (params.has(key)) {
      notice.textContent = text;
      notice.classList.remove("hidden");
    }
  }
  if (params.has("error")) {
    msg.textContent = reasons[params.get("error")] || "Please log in.";
    msg.className = "msg error";
  }
  if (location.search) history.replaceState(null, "", here("login").pathname);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value;
    if (!token) {
      msg.textContent = "Enter the token first.";
      msg.className = "msg error";
      return;
    }
    button.disabled = true;
    button.textContent = "Logging in…";
    msg.textContent = "";
    msg.className = "msg";
    notice.classList.add("hidden");
    try {
      const resp = await fetch(here("login"), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token }),
        credentials: "same-origin",
      });
      if (resp.ok) {
        input.value = "";
        location.replace(here("./").href);
        return;
      }
      let text = "Login failed (HTTP " + resp.status + ").";
      if (resp.status === 401) text = reasons.invalid;
      if (resp.status === 429) {
        const wait = resp.headers.get("Retry-After");
        text = "Too many failed attempts. Try again in " + (wait || "a few") + " seconds.";
      }
      msg.textContent = text;
      msg.className = "msg error";
    } catch (e) {
      msg.textContent = "Cannot reach the launcher. Is it still running?";
      msg.className = "msg error";
    } finally {
      button.disabled = false;
      button.textContent = "Log in";
    }
  });
})();
