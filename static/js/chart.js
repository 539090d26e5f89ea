// Draw "Steps over time" with the plotly.js shipped in our static files.
(function () {
  var holder = document.getElementById("chart");
  var data = document.getElementById("chart-data");
  if (!holder || !data || !window.Plotly) return;
  var chart = JSON.parse(data.textContent);
  var layout = {
    margin: { l: 56, r: 16, t: 8, b: 36 },
    hovermode: "x unified",
    showlegend: true,
    legend: { orientation: "h", y: -0.18, font: { size: 12 } },
    xaxis: { type: "date", showgrid: false, linecolor: "#cfd4dc", tickfont: { size: 11, color: "#667085" } },
    yaxis: { rangemode: "tozero", gridcolor: "#eef0f4", zeroline: false, tickformat: ",d",
             tickfont: { size: 11, color: "#667085" } },
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif" },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
  };
  // A dotted line and a hoverable mark at the minute of each change and retry (see overview.changes).
  var markers = chart.markers || [];
  layout.shapes = markers.map(function (m) {
    return { type: "line", x0: m.x, x1: m.x, yref: "paper", y0: 0, y1: 1,
             line: { color: "#7c8594", width: 1, dash: "dot" } };
  });
  layout.annotations = markers.map(function (m) {
    return { x: m.x, y: 1, yref: "paper", yanchor: "bottom", text: "◆", showarrow: false,
             font: { size: 10, color: "#475467" }, hovertext: m.label, captureevents: true };
  });
  if (markers.length) layout.margin.t = 20;
  window.Plotly.newPlot(holder, chart.traces, layout, { displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d"] }).then(function () {
    holder.dataset.ready = "true";
  });
})();
