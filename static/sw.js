// Cabinet's service worker: installable app, an offline page, and nothing cached
// that holds patient data (only the static shell).
// The server fills in the shell's file list and a version made from their content
// (webapp/site.py): a release that changes any of them installs a fresh cache.
"use strict";
var CACHE = "cabinet-shell-__SHELL_VERSION__";
var SHELL = __SHELL_FILES__;

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) { return cache.addAll(SHELL); }));
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k !== CACHE; }).map(function (k) { return caches.delete(k); }));
  }).then(function () {
    // Pages load while the worker starts, instead of after (every navigation goes through it).
    if (self.registration.navigationPreload) return self.registration.navigationPreload.enable();
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.indexOf("/static/") === 0) {
    event.respondWith(caches.match(request).then(function (hit) { return hit || fetch(request); }));
  } else if (request.mode === "navigate") {
    event.respondWith(Promise.resolve(event.preloadResponse).then(function (preloaded) {
      return preloaded || fetch(request);
    }).catch(function () { return caches.match("/offline"); }));
  }
});
