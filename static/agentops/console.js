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
})();
