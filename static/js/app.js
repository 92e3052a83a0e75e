// Cabinet's small page helpers. No inline scripts: behaviour hangs off data attributes.
(function () {
  "use strict";

  // <button data-copy="#input" data-copied="Copied">: copy the input's value.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var input = document.querySelector(button.getAttribute("data-copy"));
    if (!input) return;
    input.select();
    var done = function () {
      var label = button.textContent;
      button.textContent = button.getAttribute("data-copied") || label;
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });

  // <select data-autosubmit> (the language picker of every page): choosing is enough; a button
  // stays for pages without JavaScript.
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-autosubmit]")) event.target.form.submit();
  });

  // <select data-sets-length="#duration"> (the booking form's visit type): its chosen option's
  // data-duration and data-mode fill the length and the mode, which stay the staff's to change.
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select.matches || !select.matches("select[data-sets-length]")) return;
    var option = select.options[select.selectedIndex];
    var length = document.querySelector(select.getAttribute("data-sets-length"));
    if (!option || !option.getAttribute("data-duration")) return;
    if (length && length.value !== option.getAttribute("data-duration")) {
      length.value = option.getAttribute("data-duration");
      length.dispatchEvent(new Event("change", { bubbles: true }));   // the overlap check
    }
    var mode = select.form && select.form.querySelector('input[name="mode"][value="' + option.getAttribute("data-mode") + '"]');
    if (mode) mode.checked = true;
  });

  // The service worker makes Cabinet installable and shows a page when offline.
  var sw = document.body && document.body.getAttribute("data-sw");
  if (sw && "serviceWorker" in navigator) {
    navigator.serviceWorker.register(sw, { scope: "/" }).catch(function () { /* optional */ });
  }
})();

// The agenda's time grid: the line at the current time moves with the clock (the server placed it
// when the page was drawn), and a visit can be dragged onto a free cell to move it there (the
// "Move" button in its panel does the same without dragging).
(function () {
  "use strict";
  var STEP = 5;

  function placeNow() {
    document.querySelectorAll(".tg[data-now]").forEach(function (grid) {
      var line = grid.querySelector(".tg-now");
      if (!line) return;
      if (!grid._drawnAt) grid._drawnAt = Date.now();
      var minute = Number(grid.getAttribute("data-now")) + Math.floor((Date.now() - grid._drawnAt) / 60000);
      var row = Math.floor(minute / STEP) + 1;
      line.className = line.className.replace(/\br\d+\b/, "r" + row);
      line.hidden = row < 1 || row > Number(grid.getAttribute("data-rows"));
    });
  }
  placeNow();
  setInterval(placeNow, 60000);

  var dragged = null;
  document.addEventListener("dragstart", function (event) {
    var visit = event.target.closest && event.target.closest(".ev[data-move]");
    if (!visit) return;
    dragged = visit.getAttribute("data-move");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", visit.id);
  });
  document.addEventListener("dragend", function () { dragged = null; });
  ["dragover", "dragleave", "drop"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var cell = dragged && event.target.closest && event.target.closest(".tg .free[data-slot]");
      if (!cell) return;
      event.preventDefault();
      cell.classList.toggle("drop", type === "dragover");
      if (type === "drop" && window.htmx) {
        htmx.ajax("POST", dragged, {source: cell, target: "#panel", swap: "innerHTML",
                                     values: {slot: cell.getAttribute("data-slot")}});
        dragged = null;
      }
    });
  });
})();
