/*
 * The billing overview, live for staff: an EventSource on the billing stream says when usage or
 * billing changed; the page then re-reads itself (the same URL, so the same period) and updates
 * the cards, the tables and the charts in place (chart.update(), never re-created). While the
 * stream is down it polls every 60 s instead, and reconnects.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var streamUrl = script && script.dataset.streamUrl;
  var POLL_MS = 60000;
  var MIN_GAP_MS = 3000; // a burst of usage is one refresh, not one per event
  var live = false;
  var last = 0;
  var pending = null;
  var reconnectMs = 2000;

  function swap(fresh) {
    document.querySelectorAll("main [data-metric]").forEach(function (card) {
      var next = fresh.querySelector('[data-metric="' + card.dataset.metric + '"]');
      if (next && next.innerHTML !== card.innerHTML) card.innerHTML = next.innerHTML;
    });
    var oldBodies = document.querySelectorAll("main table tbody");
    var newBodies = fresh.querySelectorAll("main table tbody");
    oldBodies.forEach(function (body, i) {
      if (newBodies[i] && newBodies[i].innerHTML !== body.innerHTML) body.innerHTML = newBodies[i].innerHTML;
    });
    var specs = fresh.getElementById("billing-chart-specs");
    if (specs && window.Chart) {
      JSON.parse(specs.textContent).forEach(function (spec) {
        var chart = window.Chart.getChart("chart-" + spec.id);
        if (!chart) return;
        chart.data.labels = spec.labels.slice();
        spec.datasets.forEach(function (ds, i) { if (chart.data.datasets[i]) chart.data.datasets[i].data = ds.data.slice(); });
        chart.update();
      });
    }
    document.documentElement.dataset.billingRefreshed = String(Date.now());
  }

  function refresh() {
    var wait = Math.max(0, last + MIN_GAP_MS - Date.now());
    if (pending) return;
    pending = setTimeout(function () {
      last = Date.now();
      fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) { if (html) swap(new DOMParser().parseFromString(html, "text/html")); })
        .catch(function () {})
        .finally(function () { pending = null; });
    }, wait);
  }

  function connect() {
    if (!window.EventSource || !streamUrl) return;
    var source = new EventSource(streamUrl);
    source.addEventListener("ready", function () {
      live = true;
      reconnectMs = 2000;
      document.documentElement.dataset.billingLive = "1";
    });
    source.addEventListener("billing", refresh);
    source.onerror = function () {
      live = false;
      document.documentElement.dataset.billingLive = "0";
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, reconnectMs);
        reconnectMs = Math.min(reconnectMs * 2, 60000);
      }
    };
  }

  setInterval(function () { if (!live && !document.hidden) refresh(); }, POLL_MS);
  connect();
})();
