// Cabinet's service worker: installable app, an offline page, and nothing cached
// that holds patient data (only the static shell).
// The server fills in the shell's file list and a version made from their content
// (webapp/site.py): a release that changes any of them installs a fresh cache.
"use strict";
var CACHE = "cabinet-shell-__SHELL_VERSION__";
var SHELL = __SHELL_FILES__;
var LOCALES = __LOCALES__;
// The language of the last page the server sent (its Content-Language), kept in the cache under
// this address so the offline page still follows it after the worker was stopped and restarted.
var LAST_LANGUAGE = "/offline-language";

self.addEventListener("install", function (event) {
  // Fetched without cookies: what the cache keeps for every visitor of this browser is never
  // anyone's session (the offline page is the same for all).
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return cache.addAll(SHELL.map(function (url) { return new Request(url, { credentials: "omit" }); }));
  }));
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

function offlinePage() {
  return caches.open(CACHE).then(function (cache) {
    return cache.match(LAST_LANGUAGE).then(function (kept) { return kept ? kept.text() : ""; })
      .then(function (last) {
        var asked = [last].concat(Array.prototype.slice.call(self.navigator.languages || []));
        var lang = LOCALES[0];
        for (var i = 0; i < asked.length; i++) {
          var code = (asked[i] || "").toLowerCase().split("-")[0];
          if (LOCALES.indexOf(code) !== -1) { lang = code; break; }
        }
        return cache.match("/offline?lang=" + lang);
      });
  });
}

function remember(response) {
  var lang = response.headers.get("Content-Language");
  if (!lang) return Promise.resolve();
  return caches.open(CACHE).then(function (cache) { return cache.put(LAST_LANGUAGE, new Response(lang)); });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.indexOf("/static/") === 0) {
    // Pages ask for versioned addresses (?v=), kept as such; an ES module's relative import
    // has no version and takes the shell's copy of that file.
    event.respondWith(caches.match(request).then(function (hit) {
      return hit || (url.search ? undefined : caches.match(request, { ignoreSearch: true }));
    }).then(function (hit) { return hit || fetch(request); }));
  } else if (request.mode === "navigate") {
    event.respondWith(Promise.resolve(event.preloadResponse).then(function (preloaded) {
      return preloaded || fetch(request);
    }).then(function (response) {
      event.waitUntil(remember(response));      // the worker stays up until it is written
      return response;
    }).catch(offlinePage));
  }
});
