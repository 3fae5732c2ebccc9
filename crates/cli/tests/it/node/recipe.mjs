// A chat client that follows upstream PicoClaw's web UI connection recipe, written in
// this project's own words from that UI's behaviour (no upstream code): run by
// crates/cli/tests/it/node_recipe.rs under Node with the `ws` package.
//
// The recipe:
//  - the socket URL comes from the page's location: ws: for http:, wss: for https:,
//    `${scheme}//${location.host}/pico/ws?session_id=${encodeURIComponent(session)}`;
//  - directly against a gateway, the credential is the subprotocol offer `token.<t>`
//    (the handshake fails unless the 101 echoes it, as in a browser);
//  - through the launcher, no credential at all: the browser's session cookie and its
//    Origin, which a browser sends by itself;
//  - it sends `{type: "message.send", id: "msg-<n>-<ms>", payload: {content, media: []}}`;
//  - it ignores frames of another session, builds bubbles from message.create /
//    message.update (full text) / message.delete, skips `kind: thought` and tool-call
//    bubbles, and takes typing.stop as the end of the answer.
//
// Input (environment): PAGE_URL, SESSION, MESSAGE, and PICO_TOKEN (direct) or
// PAGE_COOKIE (through the launcher). Output: one JSON line {answer, frames, protocol}.
// Exit 0 on an answer, 1 on an error frame or a failed handshake, 2 on a timeout.

import WebSocket from "ws";

const page = new URL(process.env.PAGE_URL);
const session = process.env.SESSION;
const content = process.env.MESSAGE;
const scheme = page.protocol === "https:" ? "wss:" : "ws:";
const url = `${scheme}//${page.host}/pico/ws?session_id=${encodeURIComponent(session)}`;

const options = { origin: page.origin, handshakeTimeout: 10000 };
let socket;
if (process.env.PICO_TOKEN) {
  socket = new WebSocket(url, [`token.${process.env.PICO_TOKEN}`], options);
} else {
  socket = new WebSocket(url, { ...options, headers: { Cookie: process.env.PAGE_COOKIE ?? "" } });
}

const bubbles = new Map();
const frames = [];
const finish = (code, result) => {
  process.stdout.write(JSON.stringify(result) + "\n");
  socket.terminate();
  process.exit(code);
};
setTimeout(() => finish(2, { error: "timeout", frames }), 20000);

socket.on("unexpected-response", (_req, res) => finish(1, { error: `HTTP ${res.statusCode}`, frames }));
socket.on("error", (err) => finish(1, { error: String(err.message), frames }));
socket.on("open", () => {
  socket.send(JSON.stringify({ type: "message.send", id: `msg-1-${Date.now()}`, payload: { content, media: [] } }));
});
socket.on("message", (data) => {
  let message;
  try {
    message = JSON.parse(data.toString());
  } catch {
    return;
  }
  if (message.session_id && message.session_id !== session) return;
  frames.push(message.type);
  const payload = message.payload ?? {};
  const aside = payload.kind === "thought" || payload.kind === "tool_calls" || payload.thought === true;
  switch (message.type) {
    case "message.create":
      if (!aside) bubbles.set(payload.message_id ?? `pico-${Date.now()}`, payload.content ?? "");
      break;
    case "message.update":
      if (bubbles.has(payload.message_id)) bubbles.set(payload.message_id, payload.content ?? "");
      break;
    case "message.delete":
      bubbles.delete(payload.message_id);
      break;
    case "typing.stop":
      finish(0, { answer: [...bubbles.values()].join("\n"), frames, protocol: socket.protocol });
      break;
    case "error":
      finish(1, { error: `${payload.code}: ${payload.message}`, frames });
      break;
  }
});
