// The closing checklist: when an autosave of the report cannot reach the server, say so and
// save again as soon as the connection is back. The text itself never leaves the textarea.
(function () {
  "use strict";

  var pending = null;

  function unsaved(form) {
    var status = document.getElementById("report-saved");
    if (status) {
      status.textContent = form.getAttribute("data-unsaved") || "";
      status.classList.add("error");
    }
    pending = form;
  }

  document.addEventListener("htmx:sendError", function (event) {
    var form = event.target.closest && event.target.closest("#report-form");
    if (form) unsaved(form);
  });
  document.addEventListener("htmx:responseError", function (event) {
    var form = event.target.closest && event.target.closest("#report-form");
    if (form) unsaved(form);
  });
  window.addEventListener("online", function () {
    if (pending && document.body.contains(pending) && window.htmx) {
      window.htmx.trigger(pending, "submit");
    }
    pending = null;
  });
})();
