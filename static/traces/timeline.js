// The trace waterfall: rows drawn from the page's JSON (json_script "waterfall-data"),
// subtrees collapsed with a caret or the keyboard, a selected span's details fetched
// from the server-rendered partial. Built for thousands of rows: one innerHTML write,
// event delegation, subtrees as contiguous index ranges (rows[i .. i + size)).
(function () {
  "use strict";

  var root = document.getElementById("timeline");
  var dataEl = document.getElementById("waterfall-data");
  if (!root || !dataEl) return;

  var data = JSON.parse(dataEl.textContent);
  var rows = data.rows;
  // Positions in a row, as listed in data.fields.
  var ID = 0, DEPTH = 1, PARENT = 2, SIZE = 3, NAME = 4, STEP = 5, START = 6, DUR = 7,
      DETAIL = 8, TOKENS = 9, COST = 10, FLAGS = 11, MISSING = 12;
  var ORPHAN = 1, ERROR = 2, UNPRICED = 4;

  var badges = data.badges || {};
  var total = data.total_ms > 0 ? data.total_ms : 1;
  var body = document.getElementById("wf-body");
  var axis = document.getElementById("wf-axis");
  var panel = document.getElementById("span-panel");
  var spanUrl = root.getAttribute("data-span-url");

  var n = rows.length;
  var collapsed = new Uint8Array(n);
  var els = [];
  var indexById = Object.create(null);
  var selected = -1;
  var focused = -1;
  var cache = new Map();
  var wanted = null;

  var ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return ESC[c]; }); }

  // Same wording as traces.display.duration.
  function fmtDuration(ms) {
    if (!(ms > 0)) ms = 0;
    if (ms < 1) return ms.toFixed(2) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    var s = ms / 1000;
    if (s < 10) return s.toFixed(2) + " s";
    if (s < 60) return s.toFixed(1) + " s";
    var t = Math.round(s);
    if (t < 3600) return Math.floor(t / 60) + " min " + String(t % 60).padStart(2, "0") + " s";
    return Math.floor(t / 3600) + " h " + String(Math.floor((t % 3600) / 60)).padStart(2, "0") + " min";
  }
  // Badges the controls put on a span: [label, tone, reason].
  function badgeTags(id) {
    var list = badges[id];
    if (!list) return "";
    return list.map(function (b) {
      return '<span class="tag tone-' + esc(b[1]) + '" title="' + esc(b[2]) + '">' + esc(b[0]) + "</span>";
    }).join("");
  }
  function fmtTokens(v) { return v ? v.toLocaleString("en-US") : ""; }

  // ---------------------------------------------------------------- drawing

  function draw() {
    var ticks = [0, 0.25, 0.5, 0.75, 1];
    axis.innerHTML = ticks.map(function (f) {
      return '<span style="left:' + (f * 100) + '%">' + (f ? fmtDuration(total * f) : "0") + "</span>";
    }).join("");

    if (!n) {
      body.innerHTML = '<div class="wf-empty">No spans stored for this trace yet.</div>';
      return;
    }
    var out = new Array(n);
    for (var i = 0; i < n; i++) {
      var r = rows[i];
      var flags = r[FLAGS];
      var err = flags & ERROR;
      var left = Math.min(100, r[START] / total * 100);
      var width = Math.min(100 - left, r[DUR] / total * 100);
      indexById[r[ID]] = i;
      out[i] =
        '<div class="wf-row k-' + esc(r[STEP]) + (err ? " is-error" : "") + '" role="treeitem" id="wf-' + i +
        '" data-i="' + i + '" aria-level="' + (r[DEPTH] + 1) + '"' +
        (r[SIZE] > 1 ? ' aria-expanded="true"' : "") + ' aria-selected="false" tabindex="-1">' +
        '<div class="wf-name" style="padding-left:' + (4 + r[DEPTH] * 14) + 'px">' +
        (r[SIZE] > 1
          ? '<button type="button" class="caret" tabindex="-1" aria-label="Collapse ' + esc(r[NAME]) + '">▾</button>'
          : '<span class="caret-space"></span>') +
        '<i class="kdot" title="' + esc(r[STEP]) + '"></i><span class="nm" title="' + esc(r[NAME]) + '">' + esc(r[NAME]) + "</span>" +
        (r[DETAIL] && r[NAME].indexOf(r[DETAIL]) === -1 ? '<span class="sub">' + esc(r[DETAIL]) + "</span>" : "") +
        (err ? '<span class="tag err" title="error">!</span>' : "") +
        (flags & ORPHAN ? '<span class="tag orphan" title="parent span ' + esc(r[MISSING]) + ' was not received">orphan</span>' : "") +
        badgeTags(r[ID]) +
        "</div>" +
        '<div class="wf-track"><div class="bar' + (err ? " err" : "") + '" style="left:' + left.toFixed(3) +
        "%;width:" + width.toFixed(3) + '%"></div></div>' +
        '<div class="num">' + fmtDuration(r[DUR]) + "</div>" +
        '<div class="num">' + fmtTokens(r[TOKENS]) + "</div>" +
        '<div class="num' + (flags & UNPRICED ? " c-unpriced" : "") + '">' + esc(r[COST]) + "</div>" +
        "</div>";
    }
    body.insertAdjacentHTML("beforeend", out.join(""));
    els = body.querySelectorAll(".wf-row");
    setFocus(0, false);
  }

  // ---------------------------------------------------------------- collapse

  function paintCollapsed(i) {
    var el = els[i], size = rows[i][SIZE], value = !!collapsed[i];
    el.setAttribute("aria-expanded", value ? "false" : "true");
    el.querySelector(".caret").setAttribute("aria-label", (value ? "Expand " : "Collapse ") + rows[i][NAME]);
    var count = el.querySelector(".hidden-count");
    if (value && !count) {
      count = document.createElement("span");
      count.className = "tag hidden-count";
      count.textContent = "+" + (size - 1);
      count.title = (size - 1) + " spans hidden";
      el.querySelector(".wf-name").appendChild(count);
    } else if (!value && count) {
      count.remove();
    }
  }

  function topVisibleAncestor(i) {
    while (i >= 0 && els[i].hidden) i = rows[i][PARENT];
    return i;
  }

  function setCollapsed(i, value) {
    var size = rows[i][SIZE];
    if (size <= 1 || !!collapsed[i] === value) return;
    collapsed[i] = value ? 1 : 0;
    paintCollapsed(i);
    var end = i + size;
    if (value) {
      for (var j = i + 1; j < end; j++) els[j].hidden = true;
      if (focused > i && focused < end) setFocus(i, document.activeElement === els[focused]);
    } else {
      var k = i + 1;
      while (k < end) {
        els[k].hidden = false;
        // A collapsed descendant keeps its own subtree hidden.
        k += collapsed[k] ? rows[k][SIZE] : 1;
      }
    }
  }

  function setAll(expand) {
    for (var i = 0; i < n; i++) {
      if (rows[i][SIZE] > 1 && !!collapsed[i] === expand) {
        collapsed[i] = expand ? 0 : 1;
        paintCollapsed(i);
      }
      els[i].hidden = !expand && rows[i][DEPTH] > 0;
    }
    if (focused >= 0) setFocus(topVisibleAncestor(focused), false);
  }

  function reveal(i) {
    // Expand every collapsed ancestor of row i.
    var chain = [];
    for (var p = rows[i][PARENT]; p >= 0; p = rows[p][PARENT]) chain.push(p);
    for (var k = chain.length - 1; k >= 0; k--) setCollapsed(chain[k], false);
  }

  // ---------------------------------------------------------------- focus and selection

  function setFocus(i, move) {
    if (i < 0 || i >= n) return;
    if (focused >= 0 && els[focused]) els[focused].tabIndex = -1;
    focused = i;
    els[i].tabIndex = 0;
    if (move) {
      els[i].focus({ preventScroll: true });
      els[i].scrollIntoView({ block: "nearest" });
    }
  }

  function markSelected(i) {
    if (selected >= 0) els[selected].setAttribute("aria-selected", "false");
    selected = i;
    if (i >= 0) els[i].setAttribute("aria-selected", "true");
  }

  function select(i, opts) {
    opts = opts || {};
    reveal(i);
    markSelected(i);
    setFocus(i, opts.focus !== false);
    if (opts.scroll) els[i].scrollIntoView({ block: "center" });
    var id = rows[i][ID];
    if (history.replaceState) history.replaceState(null, "", "#span-" + id);
    loadDetail(id);
  }

  function loadDetail(id) {
    wanted = id;
    if (cache.has(id)) { showDetail(cache.get(id)); return; }
    panel.setAttribute("aria-busy", "true");
    panel.innerHTML = '<div class="panel-loading">Loading span ' + esc(id) + "…</div>";
    fetch(spanUrl + encodeURIComponent(id) + "/", {
      credentials: "same-origin",
      headers: { "X-Requested-With": "XMLHttpRequest" },
    }).then(function (resp) {
      if (resp.redirected && resp.url.indexOf("/login") !== -1) throw new Error("your session has expired; reload the page");
      if (!resp.ok) throw new Error("the server answered " + resp.status);
      return resp.text();
    }).then(function (html) {
      cache.set(id, html);
      if (wanted === id) showDetail(html);
    }).catch(function (err) {
      if (wanted !== id) return;
      panel.removeAttribute("aria-busy");
      panel.innerHTML = '<div class="panel-empty">Could not load this span: ' + esc(err.message) + ".</div>";
    });
  }

  function showDetail(html) {
    panel.removeAttribute("aria-busy");
    panel.innerHTML = html;
    panel.scrollTop = 0;
  }

  function visibleFrom(i, step) {
    for (var j = i + step; j >= 0 && j < n; j += step) if (!els[j].hidden) return j;
    return -1;
  }

  // ---------------------------------------------------------------- events

  body.addEventListener("click", function (event) {
    var rowEl = event.target.closest(".wf-row");
    if (!rowEl) return;
    var i = +rowEl.getAttribute("data-i");
    if (event.target.closest(".caret")) {
      setCollapsed(i, !collapsed[i]);
      setFocus(i, true);
      return;
    }
    select(i);
  });

  body.addEventListener("keydown", function (event) {
    if (focused < 0 || !n) return;
    var i = focused, j;
    switch (event.key) {
      case "ArrowDown": j = visibleFrom(i, 1); if (j >= 0) setFocus(j, true); break;
      case "ArrowUp": j = visibleFrom(i, -1); if (j >= 0) setFocus(j, true); break;
      case "Home": setFocus(0, true); break;
      case "End": j = visibleFrom(n, -1); if (j >= 0) setFocus(j, true); break;
      case "ArrowRight":
        if (rows[i][SIZE] > 1) { if (collapsed[i]) setCollapsed(i, false); else setFocus(i + 1, true); }
        break;
      case "ArrowLeft":
        if (rows[i][SIZE] > 1 && !collapsed[i]) setCollapsed(i, true);
        else if (rows[i][PARENT] >= 0) setFocus(rows[i][PARENT], true);
        break;
      case "Enter": case " ": select(i); break;
      default: return;
    }
    event.preventDefault();
  });

  root.querySelectorAll("[data-action]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      setAll(btn.getAttribute("data-action") === "expand-all");
    });
  });

  // The storyline's steps select their span.
  document.addEventListener("click", function (event) {
    var b = event.target.closest("button[data-span]");
    if (!b) return;
    var i = indexById[b.getAttribute("data-span")];
    if (i !== undefined) select(i, { scroll: true });
  });

  draw();
  var m = /^#span-([0-9a-f]+)$/i.exec(location.hash);
  if (m && indexById[m[1].toLowerCase()] !== undefined) select(indexById[m[1].toLowerCase()], { scroll: true, focus: false });
})();
