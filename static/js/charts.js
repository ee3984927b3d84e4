/*
 * Statistics charts (Chart.js 4, vendored). No inline script: the numbers come from the
 * page's <script type="application/json" id="kw-chart-data"> (Django's json_script), and each
 * <canvas data-kw-chart="days|categories"> is drawn from them. The same numbers are in the
 * tables next to the charts, so nothing is shown only as a picture.
 */
(function () {
  "use strict";

  var FONT = '"Noto Sans JP", "Hiragino Sans", "Yu Gothic", "Noto Sans CJK JP", Meiryo, sans-serif';
  var BLUE = "#0017c1";
  var GREEN = "#197a4b";

  function readData() {
    var node = document.getElementById("kw-chart-data");
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (e) {
      return null;
    }
  }

  function daysChart(canvas, data) {
    return new window.Chart(canvas, {
      data: {
        labels: data.labels,
        datasets: [
          { type: "bar", label: "配信数（人）", data: data.delivered, backgroundColor: BLUE, yAxisID: "y" },
          {
            type: "line", label: "友だち数（LINE 集計）", data: data.followers, borderColor: GREEN,
            backgroundColor: GREEN, spanGaps: true, yAxisID: "y1", pointStyle: "rectRot", pointRadius: 3
          }
        ]
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          y: { beginAtZero: true, position: "left", title: { display: true, text: "配信数" } },
          y1: { beginAtZero: false, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "友だち数" } }
        }
      }
    });
  }

  function categoriesChart(canvas, data) {
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{ label: "配信件数", data: data.sends, backgroundColor: data.colors, borderColor: "#333333", borderWidth: 1 }]
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } } }
      }
    });
  }

  function init() {
    if (!window.Chart) return;
    var data = readData();
    if (!data) return;
    window.Chart.defaults.font.family = FONT;
    window.Chart.defaults.color = "#333333";
    var builders = { days: daysChart, categories: categoriesChart };
    document.querySelectorAll("canvas[data-kw-chart]").forEach(function (canvas) {
      var kind = canvas.getAttribute("data-kw-chart");
      if (builders[kind] && data[kind]) {
        builders[kind](canvas, data[kind]);
        canvas.setAttribute("data-kw-chart-ready", "true");
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
