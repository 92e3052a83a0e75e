// "Let in" on the practitioner's day, without leaving the page: the camera starts at the click (it
// takes a few hundred milliseconds, meanwhile the patient is admitted), the admission is posted,
// the call's socket opens as soon as it is answered, and the call page is swapped into this one
// (js/call-swap.js), its modules already parsed. The form still works on its own: without this
// script, or when anything here fails, it is posted as before and the browser loads the call page.
(function () {
  "use strict";
  if (!window.RTCPeerConnection || !navigator.mediaDevices || !window.cabinetSwapCall || !window.FormData) return;

  function stop(warm) {
    warm.then(function (s) { s.getTracks().forEach(function (tr) { tr.stop(); }); }, function () {});
  }

  var entering = false;
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-call-url]") || !window.htmx) return;
    event.preventDefault();
    if (entering) return;
    entering = true;
    var url = form.getAttribute("data-call-url");
    var audioOnly = form.getAttribute("data-audio-only") === "1";
    var warm = window.cabinetWarmMedia = window.cabinetCallMedia(audioOnly);
    // The admission answers with a redirect to the call page: once it is there, the socket opens
    // while the page is fetched. Any other answer (the patient left: 409) is shown as before.
    var admitted = fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin", redirect: "manual" })
      .then(function (response) {
        if (response.type !== "opaqueredirect") throw new Error("refused");
        window.cabinetOpenSignal(form.getAttribute("data-signal"),
                                 { ice: form.getAttribute("data-ice"), audioOnly: audioOnly, media: warm });
      });
    var answer = admitted.then(function () { return fetch(url, { credentials: "same-origin" }); });
    window.cabinetSwapCall(answer, url).catch(function () {
      window.cabinetWarmMedia = null;
      stop(warm);
      // Admitted, but the call page could not be swapped in: load it. Refused, or the post
      // failed: post as before, and the browser shows why.
      admitted.then(function () { window.location.assign(url); }, function () { form.submit(); });
    });
  });
})();
