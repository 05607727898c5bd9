// The customer page's map: the customer's sites over a bundled outline of the US states (Leaflet, no internet
// needed). Online tiles only when the deployment sets MAP_TILE_URL.
(function () {
  "use strict";
  const COLOURS = { offline: "#b91c1c", registered: "#6b7280", on_workspace: "#15803d" };

  function worstState(feature) {
    const states = (feature.properties.devices || []).map((d) => d.state);
    if (states.includes("offline")) return "offline";
    if (states.includes("registered")) return "registered";
    return states.length ? "on_workspace" : "registered";
  }

  function popup(feature) {
    const box = document.createElement("div");
    const title = document.createElement("strong");
    title.textContent = feature.properties.name;
    box.appendChild(title);
    const address = document.createElement("div");
    address.textContent = feature.properties.address + (feature.properties.approximate ? " (ZIP code centre)" : "");
    box.appendChild(address);
    const list = document.createElement("ul");
    for (const device of feature.properties.devices || []) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = "#device-" + device.id;
      link.textContent = device.serial;
      item.appendChild(link);
      item.appendChild(document.createTextNode(" · " + device.stateLabel));
      list.appendChild(item);
    }
    box.appendChild(list);
    return box;
  }

  function draw() {
    const element = document.getElementById("customer-map");
    const data = document.getElementById("customer-map-data");
    if (!element || !data || !window.L) return;
    const config = JSON.parse(data.textContent);
    const map = L.map(element, { zoomSnap: 0.5, attributionControl: Boolean(config.tileUrl), worldCopyJump: false });
    element.leafletMap = map;
    if (config.tileUrl) {
      L.tileLayer(config.tileUrl, { maxZoom: 19, attribution: config.tileAttribution || "" }).addTo(map);
    }
    const sites = L.geoJSON(config.sites, {
      pointToLayer: (feature, latlng) =>
        L.circleMarker(latlng, {
          radius: 9,
          weight: 2,
          color: "#ffffff",
          fillColor: COLOURS[worstState(feature)],
          fillOpacity: 0.95,
          className: "site-marker site-" + feature.properties.siteId,
        }),
      onEachFeature: (feature, layer) => layer.bindPopup(popup(feature)),
    }).addTo(map);
    if (sites.getLayers().length) {
      map.fitBounds(sites.getBounds(), { padding: [40, 40], maxZoom: config.tileUrl ? 15 : 6 });
    } else {
      map.setView([39.5, -98.35], 3.5);
    }
    // the outline: under the sites, drawn once it has loaded (a static file of the portal's own)
    fetch(config.statesUrl)
      .then((response) => {
        if (!response.ok) throw new Error(response.status + " " + response.statusText);
        return response.json();
      })
      .then((outline) => {
        const states = L.geoJSON(outline, {
          interactive: false,
          style: () => ({
            className: "us-state",
            color: "#64748b",
            weight: 1,
            fillColor: "#f8fafc",
            fillOpacity: config.tileUrl ? 0 : 1,
          }),
        }).addTo(map);
        states.bringToBack();
        element.dataset.statesLoaded = String(outline.features.length);
      })
      .catch((error) => {
        element.dataset.statesError = String(error);
      });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
