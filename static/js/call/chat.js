// The side panel: chat lines (history, messages and files as they come), sending a message
// over the socket and a file through the upload form.
import { $, note, role, t } from "./page.js";
import * as signaling from "./signaling.js";

const lines = $("chat-lines");

// The server rendered the history into the page, and sends it again on each (re)connection:
// an item already shown is skipped.
export function addItem(item) {
  const key = item.type + "-" + item.id;
  if (lines.querySelector('[data-key="' + key + '"]')) return;
  const li = document.createElement("li"), who = document.createElement("span"), text = document.createElement("span");
  li.className = "chat-line" + (item.from === role ? " mine" : "");
  li.setAttribute("data-key", key);
  who.className = "who";
  who.textContent = item.from === role ? t("you") : t("other");
  text.className = "text";
  if (item.type === "file") {
    const a = document.createElement("a");
    a.href = item.url; a.textContent = item.name; a.setAttribute("download", "");
    text.appendChild(document.createTextNode(t("fileSent") + " "));
    text.appendChild(a);
  } else {
    text.textContent = item.text;
  }
  li.appendChild(who); li.appendChild(text);
  lines.appendChild(li);
  lines.scrollTop = lines.scrollHeight;
}

function sendMessage(e) {
  e.preventDefault();
  const input = $("chat-text"), text = input.value.trim();
  if (!text) return;
  if (!signaling.isOpen()) { note(t("chatFailed")); return; }
  signaling.send({ type: "chat", text: text });
  input.value = "";
}

// The form works without JavaScript too; here it stays on the page, and the file comes back
// to both sides as a "file" message over the socket.
function sendFile(e) {
  const form = e.currentTarget, button = form.querySelector("button"), error = $("file-error");
  e.preventDefault();
  error.hidden = true;
  button.disabled = true;
  // Only the server's own (translated) refusal is shown; anything else, such as the browser's
  // "Failed to fetch" in its language when the network drops, becomes the page's "could not send".
  fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                       headers: { Accept: "application/json" } }).then(function (r) {
    return r.json().catch(function () { return {}; }).then(function (body) {
      if (r.ok) { form.reset(); return ""; }
      return typeof body.error === "string" && body.error ? body.error : t("sendFailed");
    });
  }, function () { return t("sendFailed"); }).then(function (problem) {
    error.textContent = problem;
    error.hidden = !problem;
    button.disabled = false;
  });
}

export function init() {
  $("chat-form").addEventListener("submit", sendMessage);
  $("file-form").addEventListener("submit", sendFile);
}
