// The event report's tabs, its Net at Meter / Battery toggle and its two charts (Chart.js, vendored).
(function () {
  "use strict";
  var dataNode = document.getElementById("report-data");
  if (!dataNode) { return; }
  var data = JSON.parse(dataNode.textContent);
  var series = data.series || {};
  var metric = "net_at_meter";
  var powerChart = null;

  function powerDatasets() {
    var points = series[metric] || { actual_kw: [], baseline_kw: [] };
    var sign = metric === "net_at_meter" ? "grid import" : "battery discharge";
    return [
      { label: "Fleet " + sign + " (kW)", data: points.actual_kw, borderColor: "#2563eb", backgroundColor: "#2563eb", spanGaps: false },
      { label: "Baseline (kW)", data: points.baseline_kw, borderColor: "#9ca3af", backgroundColor: "#9ca3af", borderDash: [6, 4], spanGaps: false }
    ];
  }

  function drawPower() {
    var canvas = document.getElementById("power-chart");
    if (!canvas || !window.Chart) { return; }
    if (powerChart) {
      powerChart.data.datasets = powerDatasets();
      powerChart.update();
      return;
    }
    powerChart = new window.Chart(canvas, {
      type: "line",
      data: { labels: series.labels || [], datasets: powerDatasets() },
      options: { animation: false, maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
        scales: { y: { title: { display: true, text: "kW" } } } }
    });
  }

  function drawParticipation() {
    var canvas = document.getElementById("participation-chart");
    var p = series.participation;
    if (!canvas || !window.Chart || !p || canvas.dataset.drawn) { return; }
    canvas.dataset.drawn = "1";
    new window.Chart(canvas, {
      type: "line",
      data: { labels: p.labels, datasets: [
        { label: "Commanded", data: p.commanded, borderColor: "#2563eb", backgroundColor: "#2563eb", stepped: true },
        { label: "Confirmed", data: p.confirmed, borderColor: "#15803d", backgroundColor: "#15803d", stepped: true },
        { label: "Opted out", data: p.opted_out, borderColor: "#b91c1c", backgroundColor: "#b91c1c", stepped: true },
        { label: "Restored", data: p.restored, borderColor: "#ea580c", backgroundColor: "#ea580c", stepped: true }
      ] },
      options: { animation: false, maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true, title: { display: true, text: "devices" } } } }
    });
  }

  document.querySelectorAll("[data-tab]").forEach(function (button) {
    button.addEventListener("click", function () {
      document.querySelectorAll("[data-tab]").forEach(function (other) {
        var on = other === button;
        other.setAttribute("aria-selected", on ? "true" : "false");
        document.getElementById("tab-" + other.dataset.tab).hidden = !on;
      });
      if (button.dataset.tab === "participation") { drawParticipation(); }
    });
  });
  document.querySelectorAll("[data-metric]").forEach(function (button) {
    button.addEventListener("click", function () {
      metric = button.dataset.metric;
      document.querySelectorAll("[data-metric]").forEach(function (other) {
        other.setAttribute("aria-pressed", other === button ? "true" : "false");
      });
      document.querySelectorAll("[data-metric-panel]").forEach(function (panel) {
        panel.hidden = panel.dataset.metricPanel !== metric;
      });
      drawPower();
    });
  });
  drawPower();
}());
