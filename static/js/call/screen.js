// What the call looks like around the media: the chat panel shown or hidden (and its unread dot),
// your own camera's tile moved with a finger, the video filled or fitted (double tap), and the
// audio-only screen's timer and level meter.
import { $, note, onPresence, role, root } from "./page.js";
import * as media from "./media.js";

const panelButton = $("btn-panel"), dot = $("chat-unread"), stage = $("call-stage");

function showPanel(open) {
  root.classList.toggle("panel-open", open);
  panelButton.setAttribute("aria-expanded", String(open));
  if (open) dot.hidden = true;
}

// A message from the other side while the panel is hidden: a dot on its button.
export function unread(msg) {
  if (msg.from !== role && !root.classList.contains("panel-open")) dot.hidden = false;
}

// The tile follows the finger (or the mouse), kept inside the video; a new orientation puts it back.
function movableTile(tile) {
  let start = null;
  tile.addEventListener("pointerdown", function (e) {
    const moved = tile.style.transform ? tile.style.transform.match(/-?[\d.]+/g).map(Number) : [0, 0];
    const box = tile.getBoundingClientRect(), area = stage.getBoundingClientRect();
    const base = { left: box.left - moved[0], top: box.top - moved[1] };
    start = { x: e.clientX - moved[0], y: e.clientY - moved[1],
              minX: area.left - base.left, maxX: area.right - base.left - box.width,
              minY: area.top - base.top, maxY: area.bottom - base.top - box.height };
    tile.setPointerCapture(e.pointerId);
    tile.classList.add("dragging");
  });
  tile.addEventListener("pointermove", function (e) {
    if (!start) return;
    const x = Math.min(start.maxX, Math.max(start.minX, e.clientX - start.x));
    const y = Math.min(start.maxY, Math.max(start.minY, e.clientY - start.y));
    tile.style.transform = "translate(" + Math.round(x) + "px, " + Math.round(y) + "px)";
  });
  function drop() { start = null; tile.classList.remove("dragging"); }
  tile.addEventListener("pointerup", drop);
  tile.addEventListener("pointercancel", drop);
  window.addEventListener("resize", function () { tile.style.transform = ""; });
}

// Minutes and seconds since both sides were first connected.
function timer(el) {
  let since = null;
  onPresence(function (p) {
    if (since === null && p.self === "connected" && p.other === "connected") {
      since = Date.now();
      setInterval(function () {
        const s = Math.floor((Date.now() - since) / 1000), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
        const mm = h ? String(m).padStart(2, "0") : String(m);
        el.textContent = (h ? h + ":" : "") + mm + ":" + String(s % 60).padStart(2, "0");
      }, 1000);
    }
  });
}

// How loud the other side is, from the audio that comes in (not played a second time).
function levelMeter(meter) {
  const Context = window.AudioContext || window.webkitAudioContext, video = $("remote-video");
  if (!Context) { meter.hidden = true; return; }
  let analyser = null, data = null, context = null;
  setInterval(function () {
    const s = video.srcObject;
    if (!analyser && s && s.getAudioTracks().length) {
      context = new Context();
      analyser = context.createAnalyser();
      context.createMediaStreamSource(s).connect(analyser);
      data = new Uint8Array(analyser.fftSize);
      document.addEventListener("click", function () { context.resume(); }, { once: true });
    }
    if (!analyser) return;
    analyser.getByteTimeDomainData(data);
    let peak = 0;
    for (let i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i] - 128));
    meter.value = Math.min(100, Math.round(peak / 1.28));
  }, 150);
}

export function init() {
  // Beside the video where there is room for it, until the person shows or hides it themselves.
  const wide = window.matchMedia("(min-width: 60rem)");
  let chosen = false;
  showPanel(wide.matches);
  wide.addEventListener("change", function () { if (!chosen) showPanel(wide.matches); });
  panelButton.addEventListener("click", function () { chosen = true; showPanel(!root.classList.contains("panel-open")); });
  $("btn-panel-close").addEventListener("click", function () { chosen = true; showPanel(false); panelButton.focus(); });
  const tile = $("local-video");
  if (tile) movableTile(tile);
  stage.addEventListener("dblclick", function (e) { if (e.target !== tile) stage.classList.toggle("fit"); });
  // The other side's last frame is not left on the screen as if they were still there.
  onPresence(function (p) {
    if (p.other === "left" && root.getAttribute("data-other") !== "left") note("");
    root.setAttribute("data-other", p.other);
  });
  if ($("call-timer")) timer($("call-timer"));
  if ($("remote-level")) levelMeter($("remote-level"));
  // One camera only: no switch button that cannot switch.
  const flip = $("btn-flip");
  if (flip) media.devices("videoinput").then(function (cams) { if (cams.length < 2) flip.hidden = true; });
}
