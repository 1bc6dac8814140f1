// The alert inbox: pick several firing alerts and acknowledge them at once.
(function () {
  "use strict";

  var form = document.getElementById("bulk-ack");
  if (!form) return;
  var all = document.getElementById("pick-all");
  var count = document.getElementById("bulk-count");
  var boxes = Array.prototype.slice.call(
    document.querySelectorAll('input[type="checkbox"][name="alert"][form="bulk-ack"]')
  );

  function update() {
    var picked = boxes.filter(function (box) { return box.checked; }).length;
    count.textContent = picked ? picked + " selected" : "";
    if (all) {
      all.checked = picked > 0 && picked === boxes.length;
      all.indeterminate = picked > 0 && picked < boxes.length;
    }
  }

  if (all) {
    all.addEventListener("change", function () {
      boxes.forEach(function (box) { box.checked = all.checked; });
      update();
    });
  }
  boxes.forEach(function (box) { box.addEventListener("change", update); });

  // A click in the checkbox cell picks the row instead of opening the alert.
  document.querySelectorAll("table.alerts td.pick").forEach(function (cell) {
    cell.addEventListener("click", function (event) {
      event.stopPropagation();
      var box = cell.querySelector("input");
      if (box && event.target === cell) { box.checked = !box.checked; update(); }
    });
  });
  update();
})();
