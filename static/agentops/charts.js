// Draws the Plotly figures the server built (budgets/charts.py) and put in the page with
// json_script: <div data-figure="ID"> is drawn from <script id="ID" type="application/json">.
(function () {
  "use strict";

  // A phone (the width console.css stacks tables at): no toolbar over the plot, and the
  // legend under the plot instead of above it, where it would share a line with the title.
  var phone = window.matchMedia("(max-width: 700px)");

  function forPhone(fig) {
    fig.config = Object.assign({}, fig.config, { displayModeBar: false });
    var legend = fig.layout.legend;
    if (fig.layout.showlegend !== false && legend) {
      fig.layout.legend = Object.assign({}, legend, {
        orientation: "h", x: 0, xanchor: "left", y: 0, yanchor: "bottom", yref: "container",
      });
      // Room for the legend below the axis; Plotly grows the margin to fit it.
      fig.layout.margin = Object.assign({}, fig.layout.margin, { b: 8 });
    }
    return fig;
  }

  function draw(el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || !window.Plotly) return;
    var fig = JSON.parse(source.textContent);
    if (phone.matches) fig = forPhone(fig);
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
