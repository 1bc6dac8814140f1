// Draws the Plotly figures the server built (budgets/charts.py) and put in the page with
// json_script: <div data-figure="ID"> is drawn from <script id="ID" type="application/json">.
(function () {
  "use strict";

  function draw(el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || !window.Plotly) return;
    var fig = JSON.parse(source.textContent);
    el.textContent = "";
    window.Plotly.newPlot(el, fig.data, fig.layout, fig.config).then(function () {
      el.classList.add("is-drawn");
      // Points that carry a URL (a run on a per-run budget) open it.
      el.on("plotly_click", function (event) {
        var point = event.points && event.points[0];
        var url = point && point.customdata;
        if (typeof url === "string" && url.charAt(0) === "/") window.location.href = url;
      });
    });
  }

  document.querySelectorAll("[data-figure]").forEach(draw);
})();
