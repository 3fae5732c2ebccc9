// The page a pairing link (`…/pair#code=…`) opens. The code is in the fragment, which no
// browser sends to a server; it is removed from the address bar and history before
// anything else happens, then exchanged once for a named token.
(function () {
  "use strict";
  var hash = window.location.hash;
  // Forget the fragment at once: the code must not stay in history or be bookmarked.
  history.replaceState(null, "", window.location.pathname);
  var code = "";
  hash.replace(/^#/, "").split("&").forEach(function (part) {
    var kv = part.split("=");
    if (kv[0] === "code" && kv.length === 2) code = decodeURIComponent(kv[1]);
  });
  var status = document.getElementById("status");
  function fail(text) {
    status.textContent = text;
    status.className = "err";
    document.getElementById("help").hidden = false;
  }
  if (!code) {
    fail("This link has no pairing code (it must end in #code=…).");
    return;
  }
  // Relative to this page, so it works under a proxy's path prefix too.
  var redeem = new URL("api/pair/redeem", window.location.href).toString();
  fetch(redeem, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code: code }),
    credentials: "omit",
    cache: "no-store",
    referrerPolicy: "no-referrer",
  })
    .then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    })
    .then(function (res) {
      code = "";
      if (!res.ok) {
        fail((res.body && res.body.error && res.body.error.message) || "The code was refused.");
        return;
      }
      var b = res.body;
      status.textContent = "Paired. This device now has its own token.";
      status.className = "ok";
      document.getElementById("name").textContent = b.name;
      document.getElementById("scope").textContent = b.scope;
      var ws = new URL("pico/ws", window.location.href);
      ws.protocol = ws.protocol === "https:" ? "wss:" : "ws:";
      document.getElementById("ws").textContent = ws.toString();
      document.getElementById("token").textContent = b.token;
      document.getElementById("result").hidden = false;
      document.getElementById("copy").addEventListener("click", function () {
        navigator.clipboard.writeText(b.token).then(function () {
          document.getElementById("copied").hidden = false;
        });
      });
    })
    .catch(function () {
      fail("Cannot reach the gateway to exchange the code.");
    });
})();
