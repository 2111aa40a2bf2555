// Billing overview: draw each chart spec (analytics/billing_charts.py) with the vendored Chart.js.
// The specs come from the page (json_script), so the charts show exactly what the tables show.
(function () {
  "use strict";
  var source = document.getElementById("billing-chart-specs");
  if (!source || typeof window.Chart === "undefined") {
    return; // no data or no Chart.js: the tables beside each chart still carry every number
  }
  var colours = ["#2557d6", "#b86e00", "#1e7a3c", "#b3261e", "#6b3fa0", "#333333"];
  var grouping = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });

  JSON.parse(source.textContent).forEach(function (spec) {
    var canvas = document.getElementById("chart-" + spec.id);
    if (!canvas) {
      return;
    }
    var counts = spec.datasets.every(function (dataset) {
      return dataset.data.every(function (value) { return value === null || Number.isInteger(value); });
    });
    new window.Chart(canvas, {
      type: spec.type,
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (dataset, i) {
          return {
            label: dataset.label,
            data: dataset.data,
            type: dataset.type,
            borderColor: colours[i % colours.length],
            backgroundColor: dataset.type === "line" ? colours[i % colours.length] : colours[i % colours.length] + "cc",
            tension: 0.2,
            spanGaps: false,
            order: dataset.type === "line" ? 0 : 1,
          };
        }),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: Boolean(spec.stacked) },
          y: {
            stacked: Boolean(spec.stacked),
            beginAtZero: true,
            title: { display: Boolean(spec.unit), text: spec.unit },
            ticks: { precision: counts ? 0 : undefined, callback: function (value) { return grouping.format(value); } },
          },
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (item) {
                var value = item.raw === null ? "—" : grouping.format(item.raw);
                return item.dataset.label + ": " + value + (spec.unit ? " " + spec.unit : "");
              },
            },
          },
        },
      },
    });
  });
})();
