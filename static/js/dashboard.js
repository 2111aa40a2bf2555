/*
 * The usage dashboard: draws the server's chart specs with Chart.js, then keeps the page's
 * numbers fresh: an EventSource on the page's stream says when usage was recorded, and the page
 * re-reads the analytics API with its own query string; while the stream is down it polls that
 * API instead, and reconnects. Charts are updated in place (chart.update()), never re-created;
 * nothing reloads the page.
 *
 * Numbers are formatted exactly as the server's `number`/`signed` filters do (comma
 * grouping, fixed decimals, half-up rounding) so a refresh never changes their shape.
 */
(function () {
  "use strict";

  var PALETTE = ["#2557d6", "#1e7a3c", "#b86e00", "#b3261e", "#6f42c1", "#0f7c8c", "#5b6475"];
  // Sessions by status come in the model's order: uploading, pending, processing, completed,
  // failed, cancelled. Completed reads green and failed red, whatever language the labels are in.
  var STATUS_COLORS = ["#9aa3b5", "#6c8ee6", "#b86e00", "#1e7a3c", "#b3261e", "#5b6475"];
  var formatters = {};

  function formatNumber(value, decimals) {
    if (value === null || value === undefined || value === "") return "\u2014";
    var key = String(decimals);
    if (!formatters[key]) {
      // "en-US" on purpose: both UI languages group digits with commas and use a decimal point.
      formatters[key] = new Intl.NumberFormat("en-US", {
        minimumFractionDigits: decimals,
        maximumFractionDigits: decimals,
        roundingMode: "halfExpand",
      });
    }
    return formatters[key].format(Number(value));
  }

  function formatSigned(value, decimals) {
    if (value === null || value === undefined) return "\u2014";
    var amount = Number(value);
    var text = formatNumber(Math.abs(amount), decimals);
    if (text === formatNumber(0, decimals)) return text;
    return (amount > 0 ? "+" : "\u2212") + text;
  }

  function chartNumber(value) {
    if (value === null || value === undefined) return "\u2014";
    return formatNumber(value, Number.isInteger(Number(value)) ? 0 : 2);
  }

  function setText(node, text) {
    // Only touch what changed, so screen readers (aria-live) hear only new figures.
    if (node && node.textContent !== text) node.textContent = text;
  }

  /* ---- period form: the date fields only matter for a custom range ------------------- */
  function wirePeriodForm() {
    var select = document.getElementById("id_period");
    var range = document.querySelector("[data-custom-range]");
    if (!select || !range) return;
    function sync() {
      var custom = select.value === "custom";
      range.hidden = !custom;
      range.querySelectorAll("input").forEach(function (input) {
        input.disabled = !custom; // disabled fields are not submitted: preset URLs stay short
      });
    }
    select.addEventListener("change", sync);
    sync();
    // The range in the page's language under the fields, kept in step with them (static/js/date_field.js
    // keeps the ISO date of each in data-iso).
    var hint = document.querySelector("[data-date-hint]");
    var from = document.getElementById("id_from");
    var to = document.getElementById("id_to");
    if (!hint || !from || !to) return;
    var long = new Intl.DateTimeFormat(document.documentElement.lang || undefined, { dateStyle: "long", timeZone: "UTC" });
    function iso(input) { return input.dataset.iso !== undefined ? input.dataset.iso : input.value; }
    function describe() {
      var first = new Date(iso(from) + "T00:00:00Z");
      var last = new Date(iso(to) + "T00:00:00Z");
      if (isNaN(first) || isNaN(last)) return;
      setText(hint, long.format(first) + " \u2013 " + long.format(last));
    }
    range.addEventListener("date-field-change", describe);
  }

  /* ---- charts ------------------------------------------------------------------------- */
  function isRound(type) {
    return type === "doughnut" || type === "pie";
  }

  function datasetFor(spec, ds, index) {
    var type = ds.type || spec.type;
    var color = PALETTE[index % PALETTE.length];
    var out = { label: ds.label, data: ds.data.slice(), type: type };
    if (isRound(spec.type)) {
      var colors = spec.id === "sessions-by-status" ? STATUS_COLORS : PALETTE;
      out.backgroundColor = ds.data.map(function (_, i) { return colors[i % colors.length]; });
    } else if (type === "line") {
      out.borderColor = color;
      out.backgroundColor = color;
      out.borderWidth = 2;
      out.pointRadius = 0;
      out.pointStyle = "line";
      if (spec.type !== "line") out.borderDash = [6, 4]; // a line over bars is a reference (the plan limit)
    } else {
      out.backgroundColor = color;
      out.pointStyle = "rect";
    }
    return out;
  }

  function configFor(spec) {
    var round = isRound(spec.type);
    var axes = spec.axes || {}; // translated on the server; the API's refreshed specs keep these
    return {
      type: spec.type,
      data: { labels: spec.labels.slice(), datasets: spec.datasets.map(function (ds, i) { return datasetFor(spec, ds, i); }) },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: { duration: 250 },
        plugins: { legend: { position: "bottom", labels: { usePointStyle: !round } } },
        // Every chart drills down: a bar (or a doughnut's part) shows the rows behind it.
        onClick: function (event, elements, chart) {
          if (elements.length) showRowsOf(spec.id, (chart.$keys || chart.data.labels)[elements[0].index]);
        },
        onHover: function (event, elements) {
          if (event.native && event.native.target) event.native.target.style.cursor = elements.length ? "pointer" : "";
        },
        scales: round ? {} : {
          x: { title: { display: Boolean(axes.x), text: axes.x || "" } },
          y: {
            beginAtZero: true,
            title: { display: Boolean(axes.y || spec.unit), text: axes.y || spec.unit || "" },
            // Counts have no fractions; minutes may.
            ticks: { precision: spec.unit === "min" ? undefined : 0 },
          },
        },
      },
    };
  }

  function updateChart(chart, spec) {
    chart.data.labels = spec.labels.slice();
    chart.$keys = (spec.keys || spec.labels).slice();
    spec.datasets.forEach(function (ds, i) {
      var fresh = datasetFor(spec, ds, i);
      var current = chart.data.datasets[i];
      if (current) {
        current.label = fresh.label;
        current.data = fresh.data;
        if (isRound(spec.type)) current.backgroundColor = fresh.backgroundColor;
      } else {
        chart.data.datasets.push(fresh);
      }
    });
    chart.data.datasets.length = spec.datasets.length;
    chart.update();
  }

  function drillUrl(chartId, key) {
    var root = document.querySelector("[data-dashboard]");
    return "?" + (root ? root.dataset.periodQuery : "") + (chartId === "minutes" ? "" : "&chart=" + encodeURIComponent(chartId)) +
      "&on=" + encodeURIComponent(key);
  }

  function updateTable(spec) {
    var body = document.querySelector('[data-chart="' + spec.id + '"] [data-chart-rows]');
    if (!body) return;
    var keys = spec.keys || spec.labels;
    var rows = spec.labels.map(function (label, i) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      var link = document.createElement("a");
      th.scope = "row";
      link.href = drillUrl(spec.id, keys[i]) + "#history";
      link.dataset.drill = keys[i];
      link.textContent = label;
      th.appendChild(link);
      tr.appendChild(th);
      spec.datasets.forEach(function (ds) {
        var td = document.createElement("td");
        td.className = "num";
        td.textContent = chartNumber(ds.data[i]);
        tr.appendChild(td);
      });
      return tr;
    });
    body.replaceChildren.apply(body, rows);
  }

  function drawCharts(specs, charts) {
    specs.forEach(function (spec) {
      var existing = charts[spec.id];
      if (existing) {
        updateChart(existing, spec);
        updateTable(spec);
        return;
      }
      var canvas = document.getElementById("chart-" + spec.id);
      if (canvas && window.Chart) {
        charts[spec.id] = new window.Chart(canvas, configFor(spec));
        charts[spec.id].$keys = (spec.keys || spec.labels).slice();
      }
    });
  }

  /* ---- drill-down: a bar of a chart shows the rows behind it ------------------------------ */
  // The page itself renders a bar's rows (?chart=<id>&on=<key>); the rows section is replaced in
  // place. The label links in each chart's table do the same from the keyboard (and, without
  // JavaScript, as plain links).
  function showRowsOf(chartId, key) {
    var section = document.querySelector("[data-history]");
    if (!section || !key) return;
    var url = drillUrl(chartId, key);
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(new Error(response.status)); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-history]");
        if (!fresh) return;
        var current = document.querySelector("[data-history]");
        current.replaceWith(fresh);
        var heading = fresh.querySelector("h2");
        if (heading) {
          heading.tabIndex = -1; // keyboard and screen-reader users land on the rows they asked for
          heading.focus({ preventScroll: true });
        }
        fresh.scrollIntoView({ block: "start" });
      })
      .catch(function () { window.location.href = url + "#history"; }); // the page itself can show them
  }

  function wireDrillLinks() {
    document.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("[data-chart] a[data-drill]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      showRowsOf(link.closest("[data-chart]").dataset.chart, link.dataset.drill);
    });
  }

  /* ---- cards -------------------------------------------------------------------------- */
  function toneOf(delta, polarity) {
    if (delta === 0) return "same";
    if (polarity === "neutral") return "neutral";
    return (delta > 0) === (polarity === "bad") ? "bad" : "good";
  }

  function updateChange(root, card, change, decimals) {
    var box = card.querySelector("[data-change]");
    if (!box || root.dataset.allTime) return; // "All time" has no previous period to compare with
    var text = box.querySelector("[data-change-text]");
    var arrow = box.querySelector("[data-change-arrow]");
    var tone = "none";
    if (!change || change.delta === null || change.delta === undefined) {
      setText(text, "\u2014");
      if (arrow) setText(arrow, "");
    } else {
      var absolute = Number(change.delta);
      var label = formatSigned(absolute, decimals);
      if (label === formatNumber(0, decimals)) {
        label = root.dataset.noChange || "No change";
        absolute = 0;
      } else if (change.percent !== null && change.percent !== undefined) {
        label += " (" + formatSigned(change.percent, 1) + " %)";
      }
      setText(text, label);
      if (arrow) setText(arrow, absolute > 0 ? "\u25B2" : absolute < 0 ? "\u25BC" : "");
      tone = toneOf(absolute, card.dataset.polarity || "neutral");
    }
    box.className = box.className.replace(/\btone-\S+/, "tone-" + tone);
  }

  function updatePlan(root, plan) {
    var box = root.querySelector("[data-plan]");
    if (!box || !plan) return;
    box.querySelectorAll("[data-plan-used]").forEach(function (node) { setText(node, formatNumber(plan.used_minutes, 2)); });
    setText(box.querySelector("[data-plan-percent]"), formatNumber(plan.percent, 1));
    setText(box.querySelector("[data-plan-projected]"), formatNumber(plan.projected_minutes, 2));
    setText(box.querySelector("[data-plan-projected-percent]"), formatNumber(plan.projected_percent, 1));
    var bar = box.querySelector("[data-plan-bar]");
    if (bar && plan.limit_minutes !== null) {
      var clamp = function (p) { return Math.max(0, Math.min(100, Number(p) || 0)).toFixed(1) + "%"; };
      box.querySelector("[data-plan-fill]").style.width = clamp(plan.percent);
      box.querySelector("[data-plan-projected-mark]").style.left = clamp(plan.projected_percent);
      bar.setAttribute("aria-valuenow", String(plan.used_minutes));
      bar.setAttribute("aria-valuetext", formatNumber(plan.used_minutes, 2) + " / " + formatNumber(plan.limit_minutes, 0) +
        " (" + formatNumber(plan.percent, 1) + " %)");
    }
    box.className = box.className.replace(/\blevel-\S+/, "level-" + plan.level);
    box.dataset.level = plan.level;
    var warning = box.querySelector("[data-plan-warning]");
    if (warning) {
      warning.hidden = plan.level !== "warning" && plan.level !== "over";
      warning.querySelectorAll("[data-level-text]").forEach(function (node) { node.hidden = node.dataset.levelText !== plan.level; });
    }
  }

  function updateCards(root, data) {
    root.querySelectorAll("[data-metric]").forEach(function (card) {
      var metric = card.dataset.metric;
      var decimals = Number(card.dataset.decimals);
      setText(card.querySelector("[data-value]"), formatNumber(data[metric], decimals));
      updateChange(root, card, data.changes ? data.changes[metric] : null, decimals);
    });
    updatePlan(root, data.plan);
  }

  /* ---- live updates: Server-Sent Events, polling when the stream is down ------------------ */
  function start(root) {
    var specsNode = document.getElementById("chart-specs");
    var charts = {};
    drawCharts(specsNode ? JSON.parse(specsNode.textContent) : [], charts);

    var url = root.dataset.apiUrl;
    var every = Math.max(5, Number(root.dataset.refreshSeconds) || 30) * 1000;
    var stamp = document.getElementById("last-updated");
    var problem = document.getElementById("refresh-error");
    var liveBadge = document.getElementById("live-status");
    var clock = new Intl.DateTimeFormat("en-GB", {
      timeZone: root.dataset.timezone || undefined,
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    });
    var timer = null;
    var inFlight = null;
    var again = false;
    var live = false;
    var source = null;
    var reconnectMs = 2000;
    var refreshes = 0;

    function refresh() {
      if (inFlight) {
        again = true; // news arrived during a read that may have started before it: read once more
        return inFlight;
      }
      inFlight = fetch(url, { credentials: "same-origin", headers: { Accept: "application/json", "X-Dashboard-Refresh": "1" } })
        .then(function (response) {
          if (!response.ok) throw new Error(response.status + " " + response.statusText);
          return response.json();
        })
        .then(function (data) {
          updateCards(root, data);
          if (data.charts) drawCharts(data.charts, charts);
          var now = new Date();
          stamp.dateTime = now.toISOString();
          setText(stamp, clock.format(now));
          problem.hidden = true;
          refreshes += 1;
          return data;
        })
        .catch(function (error) {
          problem.hidden = false;
          setText(problem, (root.dataset.refreshFailed || "Could not refresh") + ": " + error.message);
        })
        .finally(function () {
          inFlight = null;
          if (again) {
            again = false;
            refresh();
          }
        });
      return inFlight;
    }

    function setLive(on) {
      live = on;
      root.dataset.live = on ? "1" : "0";
      if (liveBadge) liveBadge.hidden = !on;
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(function () {
        // A background tab does not poll; nor does a page the stream keeps up to date.
        if (document.hidden || live) return schedule();
        refresh().then(schedule);
      }, every);
    }

    function connect() {
      if (!window.EventSource || !root.dataset.streamUrl) return;
      source = new EventSource(root.dataset.streamUrl);
      source.addEventListener("ready", function () {
        reconnectMs = 2000;
        setLive(true);
        refresh(); // whatever changed between the page's render and the subscription
      });
      source.addEventListener("usage", function () { refresh(); });
      source.onerror = function () {
        setLive(false); // polling takes over at once
        if (source.readyState === EventSource.CLOSED) {
          // The server said no (e.g. 204 under WSGI) or went away for good: try again later, less often.
          setTimeout(connect, reconnectMs);
          reconnectMs = Math.min(reconnectMs * 2, 60000);
        } // else EventSource reconnects by itself after the server's "retry"
      };
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && !live) refresh().then(schedule);
    });
    schedule();
    connect();
    return {
      refresh: refresh,
      charts: charts,
      isLive: function () { return live; },
      refreshes: function () { return refreshes; },
      stream: function () { return source; },
    };
  }

  wirePeriodForm();
  var root = document.querySelector("[data-dashboard]");
  if (root) {
    wireDrillLinks();
    window.usageDashboard = start(root);
  }
})();
