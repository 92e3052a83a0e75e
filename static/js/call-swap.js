// Swap the call page into the page already open (the patient's waiting room, the practitioner's
// day) instead of loading it anew: the camera opened here stays open (window.cabinetWarmMedia,
// taken by js/call-early.js), the call's modules are already parsed (templates/visit/_call_preload.html),
// and no new document, stylesheet or service worker start stands between the click and the call.
// cabinetSwapCall(answer, url): answer is a fetch() promise of the call page at url. Resolves once
// the call's scripts run; rejects when the answer is not the call page (the caller then loads it).
(function () {
  "use strict";
  if (!window.fetch || !window.DOMParser || !window.Promise) return;

  function load(script) {
    return new Promise(function (resolve, reject) {
      script.onload = resolve;
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  // The call's signaling socket, opened as soon as this side may join (admitted), while the call
  // page is still on its way: js/call-early.js takes it (with what came on it) instead of opening one.
  window.cabinetOpenSignal = function (address) {
    var path = new URL(address, location.href).pathname;     // websocket routes build as ws:// URLs
    var warm = { path: path, messages: [], openedAt: null, closed: null };
    var ws = warm.ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
    ws.onopen = function () { warm.openedAt = Math.round(performance.now()); };
    ws.onmessage = function (e) { warm.messages.push(e); };
    ws.onclose = function (e) { warm.closed = e; };
    window.cabinetWarmSocket = warm;
    return warm;
  };

  window.cabinetSwapCall = function (answer, url) {
    return answer.then(function (response) {
      if (!response.ok || new URL(response.url).pathname !== new URL(url, location.href).pathname) throw new Error("moved");
      return response.text();
    }).then(function (html) {
      var page = new DOMParser().parseFromString(html, "text/html");
      var early = page.querySelector("script[src*='js/call-early.js']");
      var main = page.querySelector("script[type='module'][src*='js/call/main.js']");
      var content = page.getElementById("main");
      if (!early || !main || !content || !page.getElementById("call") || !window.htmx) throw new Error("not the call");
      page.querySelectorAll("head link[rel='stylesheet']").forEach(function (link) {
        if (!document.querySelector("link[rel='stylesheet'][href='" + link.getAttribute("href") + "']")) {
          document.head.appendChild(document.importNode(link, false));
        }
      });
      history.replaceState(null, "", url);
      document.title = page.title;
      document.body.className = page.body.className;
      // htmx swaps it, so this page's live socket is closed as it goes (its slot is the call's).
      content.querySelectorAll("script").forEach(function (s) { s.remove(); });
      window.htmx.swap(document.getElementById("main"), content.innerHTML, { swapStyle: "innerHTML" });
      var first = document.createElement("script");
      Object.keys(early.dataset).forEach(function (k) { first.dataset[k] = early.dataset[k]; });
      first.src = early.getAttribute("src");
      return load(first).then(function () {
        var modules = document.createElement("script");
        modules.type = "module";
        modules.src = main.getAttribute("src");
        document.body.appendChild(modules);
      });
    });
  };
})();
