// Login page: posts the token as JSON, shows clear errors, never puts the token in a URL.
// A one-time login link (login#code=...) logs in by itself: the code is taken from the
// fragment, dropped from the address bar at once, and posted to login/code.
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
    code: "This login link is no longer valid (it works once, for 2 minutes). Open a new one or paste the launcher token below.",
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
  const showError = (text) => {
    msg.textContent = text;
    msg.className = "msg error";
  };

  // Reads the one-time code, drops it (and any query) from the address bar and history at
  // once, and logs in with it. Also on `hashchange`: a link opened while this page is
  // showing only changes the fragment.
  function codeLogin() {
    const code = new URLSearchParams(location.hash.slice(1)).get("code");
    if (location.search || location.hash) history.replaceState(null, "", here("login").pathname);
    if (!code) return;
    msg.textContent = "Logging in with the login link…";
    msg.className = "msg";
    fetch(here("login/code"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code }),
      credentials: "same-origin",
    })
      .then((resp) => {
        if (resp.ok) {
          location.replace(here("./").href);
          return;
        }
        if (resp.status === 429) {
          const wait = resp.headers.get("Retry-After");
          showError("Too many failed attempts. Try again in " + (wait || "a few") + " seconds.");
          return;
        }
        showError(resp.status === 401 ? reasons.code : "Login failed (HTTP " + resp.status + ").");
      })
      .catch(() => showError("Cannot reach the launcher. Is it still running?"));
  }
  codeLogin();
  window.addEventListener("hashchange", codeLogin);

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
