// Live pages: follow a server-sent redirect, and on the practitioner's day show
// who is waiting in the tab title, with a sound and a browser notification.
(function () {
  "use strict";

  function followRedirect() {
    var target = document.querySelector("[data-redirect]");
    if (!target) return;
    var url = target.getAttribute("data-redirect");
    target.removeAttribute("data-redirect");      // followed once, whichever way
    // Into the call without a new page load where the waiting room can (js/waiting-call.js).
    if (window.cabinetEnterCall && url.slice(-5) === "/call" && window.cabinetEnterCall(url)) return;
    window.location.assign(url);
  }

  var baseTitle = document.title;
  var known = null;

  // Browsers keep sound off until the person has touched the page: one shared
  // AudioContext, woken by the first click or key press, so arrivals can be heard.
  var audio = null;
  function audioContext() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!audio && Context) audio = new Context();
    if (audio && audio.state === "suspended") audio.resume().catch(function () { /* needs a gesture */ });
    return audio;
  }
  ["pointerdown", "keydown"].forEach(function (type) {
    document.addEventListener(type, function () { if (document.getElementById("today-day")) audioContext(); }, { capture: true });
  });

  function beep() {
    var context = audioContext();
    if (!context) return;
    try {
      var oscillator = context.createOscillator();
      var gain = context.createGain();
      oscillator.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, context.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, context.currentTime + 0.6);
      oscillator.connect(gain).connect(context.destination);
      oscillator.start();
      oscillator.stop(context.currentTime + 0.6);
    } catch (e) { /* sound is a bonus */ }
  }

  function waitingRoom() {
    var list = document.getElementById("today-day");
    if (!list) return;
    var rows = list.querySelectorAll("[data-waiting]");
    var ids = Array.prototype.map.call(rows, function (r) { return r.getAttribute("data-waiting"); });
    document.title = rows.length ? "(" + rows.length + ") " + baseTitle : baseTitle;
    if (known !== null) {
      var arrived = ids.filter(function (id) { return known.indexOf(id) === -1; });
      if (arrived.length) {
        beep();
        if ("Notification" in window && Notification.permission === "granted") {
          new Notification(list.getAttribute("data-notify-title"), { body: list.getAttribute("data-notify-body"), tag: "cabinet-waiting" });
        }
      }
    }
    known = ids;
  }

  // The patient's waiting room: its status is swapped whole, and a live region that appears with its
  // words is not announced by every screen reader; the page's lasting region says what changed.
  var lastNews = null;
  function announce() {
    var region = document.getElementById("live-news");
    if (!region) return;
    var parts = document.querySelectorAll("#waiting-status [data-announce]");
    var news = Array.prototype.map.call(parts, function (el) { return el.textContent.replace(/\s+/g, " ").trim(); }).join(" ");
    if (lastNews !== null && news !== lastNews) region.textContent = news;
    lastNews = news;
  }

  function refresh() { followRedirect(); waitingRoom(); announce(); }
  document.addEventListener("DOMContentLoaded", refresh);
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.querySelector("[data-enable-notifications]");
    if (button) button.hidden = !("Notification" in window) || Notification.permission !== "default";
  });
  document.addEventListener("htmx:wsAfterMessage", refresh);
  document.addEventListener("htmx:afterSwap", refresh);

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-enable-notifications]");
    if (!button || !("Notification" in window)) return;
    Notification.requestPermission().then(function (p) { button.hidden = p === "granted"; });
  });
})();
