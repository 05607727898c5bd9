// The event timeline's chart: devices commanded, confirmed, failed and restored so far, minute by minute
// (Chart.js, vendored). The data is the page's own (json_script "timeline-data").
(function () {
  "use strict";
  function draw() {
    var holder = document.getElementById("timeline-data");
    var canvas = document.getElementById("progress-chart");
    if (!holder || !canvas || !window.Chart) return;
    var data = JSON.parse(holder.textContent);
    var colours = { commanded: "#3b82f6", confirmed: "#15803d", failed: "#b91c1c", restored: "#0d9488" };
    var names = { commanded: "Commanded", confirmed: "Confirmed", failed: "Failed", restored: "Restored" };
    var datasets = Object.keys(colours).map(function (key) {
      return {
        label: names[key], data: data.series[key] || [], borderColor: colours[key], backgroundColor: colours[key],
        stepped: true, pointRadius: 0, borderWidth: 2, fill: false
      };
    });
    new window.Chart(canvas, {
      type: "line",
      data: { labels: data.labels, datasets: datasets },
      options: {
        animation: false, maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "devices" } },
                  x: { ticks: { maxTicksLimit: 12 } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
})();
