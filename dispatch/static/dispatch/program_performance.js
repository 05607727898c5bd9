// A program's rollups: enrolled against its launch threshold, energy delivered per event, health and opt-outs.
(function () {
  "use strict";
  var node = document.getElementById("performance-data");
  if (!node || !window.Chart) { return; }
  var data = JSON.parse(node.textContent);
  var events = data.events || [];
  var names = events.map(function (e) { return e.name + (e.isTest ? " (test)" : ""); });
  var percent = function (key) { return events.map(function (e) { return e[key] === null ? null : Math.round(e[key] * 1000) / 10; }); };
  var options = function (unit) {
    return { animation: false, maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true, title: { display: true, text: unit } } } };
  };
  new window.Chart(document.getElementById("enrollment-chart"), {
    type: "line",
    data: { labels: data.enrollment.map(function (p) { return p.day; }), datasets: [
      { label: "Enrolled", data: data.enrollment.map(function (p) { return p.enrolled; }), borderColor: "#2563eb", backgroundColor: "#2563eb", stepped: true },
      { label: "Launch threshold", data: data.enrollment.map(function (p) { return p.threshold; }), borderColor: "#9ca3af", backgroundColor: "#9ca3af", borderDash: [6, 4], pointRadius: 0 }
    ] },
    options: options("devices")
  });
  new window.Chart(document.getElementById("delivered-chart"), {
    type: "bar",
    data: { labels: names, datasets: [
      { label: "Net at meter (kWh)", data: events.map(function (e) { return e.netDeliveredKwh; }), backgroundColor: "#2563eb" },
      { label: "Battery (kWh)", data: events.map(function (e) { return e.batteryDeliveredKwh; }), backgroundColor: "#15803d" }
    ] },
    options: options("kWh")
  });
  var health = data.health || [];
  new window.Chart(document.getElementById("fleet-health-chart"), {
    type: "line",
    data: { labels: health.map(function (p) { return p.day; }), datasets: [
      { label: "Enrolled", data: health.map(function (p) { return p.enrolled; }), borderColor: "#9ca3af", backgroundColor: "#9ca3af" },
      { label: "Online (Device on Workspace)", data: health.map(function (p) { return p.online; }), borderColor: "#2563eb", backgroundColor: "#2563eb" },
      { label: "Reported within a day", data: health.map(function (p) { return p.reporting; }), borderColor: "#15803d", backgroundColor: "#15803d" }
    ] },
    options: options("devices")
  });
  new window.Chart(document.getElementById("health-chart"), {
    type: "line",
    data: { labels: names, datasets: [
      { label: "Targeted devices taking part (%)", data: percent("takingPartShare"), borderColor: "#2563eb", backgroundColor: "#2563eb" },
      { label: "Commanded devices responding (%)", data: percent("respondingShare"), borderColor: "#15803d", backgroundColor: "#15803d" },
      { label: "Opted out (%)", data: percent("optOutShare"), borderColor: "#b91c1c", backgroundColor: "#b91c1c" }
    ] },
    options: options("%")
  });
}());
