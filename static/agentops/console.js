// Small behaviours shared by every page. No framework, no build step.
(function () {
  "use strict";

  // Project switcher: choosing a project opens its traces.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // Table rows open their trace; the link inside stays the keyboard / middle-click path.
  document.addEventListener("click", function (event) {
    var row = event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a, button, input, select")) return;
    if (window.getSelection && String(window.getSelection())) return; // selecting text
    if (event.metaKey || event.ctrlKey) { window.open(row.dataset.href, "_blank"); return; }
    window.location.href = row.dataset.href;
  });

  // The "Menu" of a phone is a <details>, so it opens without this script. Here: Escape and
  // a tap outside close it. A browser that cannot show a closed <details>' content on a
  // wide screen (no ::details-content) gets it opened there instead.
  var menu = document.querySelector("details[data-nav-menu]");
  if (menu) {
    var wide = window.matchMedia("(min-width: 1201px)");
    var styled = window.CSS && CSS.supports && CSS.supports("selector(::details-content)");
    var sync = function () {
      if (styled) return;
      menu.open = wide.matches;
      menu.classList.toggle("is-wide", wide.matches);
    };
    sync();
    if (wide.addEventListener) wide.addEventListener("change", sync);
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape" || !menu.open || wide.matches) return;
      menu.open = false;
      menu.querySelector("summary").focus();
    });
    document.addEventListener("click", function (event) {
      if (menu.open && !wide.matches && !menu.contains(event.target)) menu.open = false;
    });
  }

  // Tables turn into stacked cards on a phone (console.css); each cell is captioned with
  // its column's heading unless the template gave it a data-label already.
  document.querySelectorAll("table.data").forEach(function (table) {
    var heads = [];
    table.querySelectorAll("thead tr:last-child th").forEach(function (th) {
      var span = th.colSpan || 1;
      for (var i = 0; i < span; i++) heads.push(th.textContent.trim().replace(/\s+/g, " "));
    });
    if (!heads.length) return;
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      var col = 0;
      Array.prototype.forEach.call(tr.cells, function (cell) {
        if (!cell.hasAttribute("data-label") && heads[col]) cell.setAttribute("data-label", heads[col]);
        col += cell.colSpan || 1;
      });
    });
  });
})();
