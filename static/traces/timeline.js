// The trace waterfall. Rows come from the page's JSON (json_script "waterfall-data"): every
// row of a small trace, or the first window of a big one, whose other rows are fetched by
// offset as they scroll into view (data-rows-url). Only the rows on screen are in the DOM
// for a big trace; subtrees are contiguous index ranges (rows[i .. i + size)), so a
// collapsed subtree is one range to skip. A selected span's details come from the
// server-rendered partial. Positions are set through the CSSOM (no inline style
// attributes, for the Content Security Policy).
(function () {
  "use strict";

  var root = document.getElementById("timeline");
  var dataEl = document.getElementById("waterfall-data");
  if (!root || !dataEl) return;

  var data = JSON.parse(dataEl.textContent);
  // Positions in a row, as listed in data.fields.
  var ID = 0, DEPTH = 1, PARENT = 2, SIZE = 3, NAME = 4, STEP = 5, START = 6, DUR = 7,
      DETAIL = 8, TOKENS = 9, COST = 10, FLAGS = 11, MISSING = 12;
  var ORPHAN = 1, ERROR = 2, UNPRICED = 4, SLOW = 8;
  var ROW_H = 24, OVERSCAN = 20;

  var n = data.count !== undefined ? data.count : data.rows.length;
  var windowed = !!data.windowed;
  var block = data.window || 200;
  var rows = new Array(n);
  var badges = data.badges || {};
  var totals = data.totals || null;
  var total = data.total_ms > 0 ? data.total_ms : 1;
  var body = document.getElementById("wf-body");
  var list = document.getElementById("wf-rows");
  var head = root.querySelector(".wf-head");
  var axis = document.getElementById("wf-axis");
  var panel = document.getElementById("span-panel");
  var status = document.getElementById("wf-status");
  var spanUrl = root.getAttribute("data-span-url");
  var rowsUrl = root.getAttribute("data-rows-url");
  var nextUrl = root.getAttribute("data-next-url");

  var indexById = Object.create(null);
  var collapsed = new Map();  // row index → subtree size
  var ranges = [];            // outermost collapsed subtrees, [start, size], by start
  var visibleCount = n;
  var shown = [0, 0];         // visible positions drawn, [from, to)
  var selected = -1, focused = -1;
  var pending = new Map();    // block number → its fetch
  var view = { start: 0, end: total };  // the part of the time axis shown
  var cache = new Map();
  var wanted = null;
  var frame = 0;

  function store(offset, list_, more) {
    for (var k = 0; k < list_.length; k++) {
      rows[offset + k] = list_[k];
      indexById[list_[k][ID]] = offset + k;
    }
    if (more) for (var id in more) badges[id] = more[id];
  }
  store(data.offset || 0, data.rows, null);

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
  function fmtTokens(v) { return v ? v.toLocaleString("en-US") : ""; }
  // Badges the controls put on a span: [label, tone, reason].
  function badgeTags(id) {
    var l = badges[id];
    if (!l) return "";
    return l.map(function (b) {
      return '<span class="tag tone-' + esc(b[1]) + '" title="' + esc(b[2]) + '">' + esc(b[0]) + "</span>";
    }).join("");
  }

  // ---------------------------------------------------------------- time axis

  // The tick step for `span` ms shown in at most `most` ticks: 1, 2 or 5 × 10^n ms.
  function niceStep(span, most) {
    var raw = span / Math.max(1, most);
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }
  function decimals(x) {
    // Digits after the point that a multiple of x needs (x is 1, 2 or 5 × 10^n).
    return x >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(x) - 1e-9));
  }
  function fmtTick(t, step) {
    if (t >= 1000) return (t / 1000).toFixed(decimals(step / 1000)) + " s";
    return t.toFixed(decimals(step)) + " ms";
  }
  var TICK_PX = 64;  // room for one label
  function drawAxis() {
    var width = axis.clientWidth;
    axis.textContent = "";
    if (!width) return;
    var span = view.end - view.start;
    var step = niceStep(span, Math.max(2, Math.floor(width / TICK_PX)));
    var first = Math.ceil(view.start / step - 1e-9);
    for (var k = first; k * step <= view.end + 1e-9; k++) {
      var t = k * step;
      var x = (t - view.start) / span * width;
      var el = document.createElement("span");
      el.className = "tk" + (x < TICK_PX / 2 ? " tk-l" : x > width - TICK_PX / 2 ? " tk-r" : "");
      if (x > width - TICK_PX / 2 && x < width - 1) continue;  // no room before the end
      el.textContent = t === 0 ? "0" : fmtTick(t, step);
      el.style.left = (x / width * 100) + "%";
      axis.appendChild(el);
    }
  }

  // ---------------------------------------------------------------- visible rows

  // Outermost collapsed subtrees in order; what they hide is skipped by position.
  function rebuildRanges() {
    var keys = Array.from(collapsed.keys()).sort(function (a, b) { return a - b; });
    ranges = [];
    var hidden = 0, end = -1;
    for (var k = 0; k < keys.length; k++) {
      var s = keys[k];
      if (s < end) continue;
      var size = collapsed.get(s);
      ranges.push([s, size]);
      end = s + size;
      hidden += size - 1;
    }
    visibleCount = n - hidden;
  }
  function toIndex(v) {
    var i = v;
    for (var k = 0; k < ranges.length; k++) {
      if (ranges[k][0] < i) i += ranges[k][1] - 1; else break;
    }
    return i;
  }
  function toPosition(i) {
    var v = i;
    for (var k = 0; k < ranges.length; k++) {
      var s = ranges[k][0], e = s + ranges[k][1];
      if (s >= i) break;
      if (i < e) return -1;  // hidden in a collapsed subtree
      v -= ranges[k][1] - 1;
    }
    return v;
  }

  // ---------------------------------------------------------------- drawing

  function rowHtml(i) {
    var r = rows[i];
    if (!r) {
      return '<div class="wf-row wf-loading" data-i="' + i + '" aria-busy="true"><div class="wf-name">Loading…</div></div>';
    }
    var flags = r[FLAGS];
    var err = flags & ERROR;
    var isTotal = totals && r[ID] === totals.span_id;
    var open = r[SIZE] > 1 && !collapsed.has(i);
    return '<div class="wf-row k-' + esc(r[STEP]) + (err ? " is-error" : "") + (isTotal ? " is-total" : "") +
      '" role="treeitem" id="wf-' + i + '" data-i="' + i + '" aria-level="' + (r[DEPTH] + 1) + '"' +
      (r[SIZE] > 1 ? ' aria-expanded="' + open + '"' : "") +
      ' aria-selected="' + (i === selected) + '" tabindex="' + (i === focused ? 0 : -1) + '">' +
      '<div class="wf-name">' +
      (r[SIZE] > 1
        ? '<button type="button" class="caret" tabindex="-1" aria-label="' + (open ? "Collapse " : "Expand ") + esc(r[NAME]) + '">▾</button>'
        : '<span class="caret-space"></span>') +
      '<i class="kdot" title="' + esc(r[STEP]) + '"></i><span class="nm" title="' + esc(r[NAME]) + '">' + esc(r[NAME]) + "</span>" +
      (r[DETAIL] && r[NAME].indexOf(r[DETAIL]) === -1 ? '<span class="sub">' + esc(r[DETAIL]) + "</span>" : "") +
      (err ? '<span class="tag err" title="error">!</span>' : "") +
      (flags & SLOW ? '<span class="tag slow" title="among the slowest 1% of leaf spans">slow</span>' : "") +
      (flags & ORPHAN ? '<span class="tag orphan" title="parent span ' + esc(r[MISSING]) + ' was not received">orphan</span>' : "") +
      (isTotal ? '<span class="tag total" title="spans in this trace">' + totals.spans.toLocaleString("en-US") + (totals.spans === 1 ? " span" : " spans") + "</span>" : "") +
      (!open && r[SIZE] > 1 ? '<span class="tag hidden-count" title="' + (r[SIZE] - 1) + ' spans hidden">+' + (r[SIZE] - 1) + "</span>" : "") +
      badgeTags(r[ID]) +
      "</div>" +
      '<div class="wf-track"><div class="bar' + (err ? " err" : "") + '"></div></div>' +
      (isTotal
        ? '<div class="num" title="whole trace">' + fmtDuration(totals.duration_ms) + "</div>" +
          '<div class="num" title="whole trace: tokens">' + fmtTokens(totals.tokens) + "</div>" +
          '<div class="num" title="whole trace: cost">' + esc(totals.cost) + "</div>"
        : '<div class="num">' + fmtDuration(r[DUR]) + "</div>" +
          '<div class="num">' + fmtTokens(r[TOKENS]) + "</div>" +
          '<div class="num' + (flags & UNPRICED ? " c-unpriced" : "") + '">' + esc(r[COST]) + "</div>") +
      "</div>";
  }

  function placeBar(el) {
    var r = rows[+el.getAttribute("data-i")];
    var bar = el.querySelector(".bar");
    if (!r || !bar) return;
    var span = view.end - view.start;
    var left = (r[START] - view.start) / span * 100;
    var right = (r[START] + r[DUR] - view.start) / span * 100;
    var l = Math.max(0, Math.min(100, left));
    bar.hidden = right < 0 || left > 100;
    bar.style.left = l.toFixed(3) + "%";
    bar.style.width = Math.max(0, Math.min(100, right) - l).toFixed(3) + "%";
    el.firstChild.style.paddingLeft = (4 + r[DEPTH] * 14) + "px";
  }
  function placeBars() {
    for (var el = list.firstElementChild; el; el = el.nextElementSibling) placeBar(el);
  }

  function range() {
    if (!windowed) return [0, visibleCount];
    var top = body.getBoundingClientRect().top;
    var from = Math.floor(-top / ROW_H) - OVERSCAN;
    var to = Math.ceil((window.innerHeight - top) / ROW_H) + OVERSCAN;
    return [Math.max(0, Math.min(from, visibleCount)), Math.max(0, Math.min(to, visibleCount))];
  }

  // Rows for visible positions [from, to) as elements, not yet in the document.
  var scratch = document.createElement("div");
  function make(from, to, missing) {
    var out = [];
    for (var v = from; v < to; v++) {
      var i = toIndex(v);
      if (!rows[i]) missing.push(i);
      out.push(rowHtml(i));
    }
    scratch.innerHTML = out.join("");
    var els = Array.prototype.slice.call(scratch.children);
    els.forEach(placeBar);
    return els;
  }

  // A scroll only adds and drops rows at the ends; anything else draws the range anew.
  function draw(force) {
    frame = 0;
    if (!n) {
      list.innerHTML = '<div class="wf-empty">No spans stored for this trace yet.</div>';
      return;
    }
    var r = range(), a = shown[0], b = shown[1];
    if (!force && r[0] === a && r[1] === b) return;
    var hadFocus = body.contains(document.activeElement) && document.activeElement !== body;
    var missing = [];
    if (force || r[1] <= a || r[0] >= b || a === b) {
      list.replaceChildren.apply(list, make(r[0], r[1], missing));
    } else {
      for (var k = a; k < r[0]; k++) list.firstElementChild.remove();
      for (k = r[1]; k < b; k++) list.lastElementChild.remove();
      if (r[0] < a) list.prepend.apply(list, make(r[0], a, missing));
      if (r[1] > b) list.append.apply(list, make(b, r[1], missing));
    }
    shown = r;
    body.style.height = (visibleCount * ROW_H) + "px";
    list.style.transform = "translateY(" + (r[0] * ROW_H) + "px)";
    if (hadFocus && focused >= 0) {
      var f = document.getElementById("wf-" + focused);
      if (f) f.focus({ preventScroll: true });
    }
    if (missing.length) load(missing);
  }
  function schedule() {
    if (!frame) frame = requestAnimationFrame(function () { draw(false); });
  }
  function redraw() { draw(true); }

  // ---------------------------------------------------------------- loading rows

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) {
        if (resp.redirected && resp.url.indexOf("/login") !== -1) throw new Error("your session has expired; reload the page");
        if (!resp.ok) throw new Error("the server answered " + resp.status);
        return resp.json();
      });
  }
  function fetchBlock(b) {
    if (pending.has(b)) return pending.get(b);
    status.textContent = "Loading rows…";
    var p = getJson(rowsUrl + "?offset=" + (b * block) + "&limit=" + block).then(function (w) {
      store(w.offset, w.rows, w.badges);
      pending.delete(b);
      if (!pending.size) status.textContent = "";
      redraw();
    }).catch(function (err) {
      status.textContent = "Could not load rows: " + err.message;
      setTimeout(function () { pending.delete(b); }, 3000);
      throw err;
    });
    pending.set(b, p);
    return p;
  }
  function load(indices) {
    var seen = {};
    indices.forEach(function (i) {
      var b = Math.floor(i / block);
      if (!seen[b]) { seen[b] = 1; fetchBlock(b).catch(function () {}); }
    });
  }
  function ensure(i) {
    return rows[i] ? Promise.resolve(i) : fetchBlock(Math.floor(i / block)).then(function () { return i; });
  }

  // ---------------------------------------------------------------- collapse

  function setCollapsed(i, value) {
    var r = rows[i];
    if (!r || r[SIZE] <= 1 || collapsed.has(i) === value) return;
    if (value) collapsed.set(i, r[SIZE]); else collapsed.delete(i);
    rebuildRanges();
    if (value && focused > i && focused < i + r[SIZE]) focused = i;
    if (value && selected > i && selected < i + r[SIZE]) markSelected(-1);
    redraw();
  }
  function setAll(expand) {
    collapsed.clear();
    if (!expand) {
      // Every subtree whose row is known; a big trace's other rows are not loaded yet.
      for (var i = 0; i < n; i++) if (rows[i] && rows[i][SIZE] > 1) collapsed.set(i, rows[i][SIZE]);
    }
    rebuildRanges();
    if (focused >= 0 && toPosition(focused) < 0) focused = topVisible(focused);
    redraw();
  }
  function topVisible(i) {
    var best = i;
    collapsed.forEach(function (size, s) { if (s < i && i < s + size && s < best) best = s; });
    return best;
  }
  function reveal(i) {
    var changed = false;
    collapsed.forEach(function (size, s) {
      if (s < i && i < s + size) { collapsed.delete(s); changed = true; }
    });
    if (changed) rebuildRanges();
  }

  // ---------------------------------------------------------------- focus and selection

  function headerBottom() {
    var rect = head.getBoundingClientRect();
    return Math.max(0, rect.bottom);
  }
  function scrollToRow(i, center) {
    var v = toPosition(i);
    if (v < 0) return;
    var top = body.getBoundingClientRect().top + v * ROW_H;
    var minTop = headerBottom(), maxTop = window.innerHeight - ROW_H;
    if (center) window.scrollBy(0, top - (minTop + maxTop) / 2);
    else if (top < minTop) window.scrollBy(0, top - minTop);
    else if (top > maxTop) window.scrollBy(0, top - maxTop);
  }
  function setFocus(i, move) {
    if (i < 0 || i >= n) return;
    var old = document.getElementById("wf-" + focused);
    if (old) old.tabIndex = -1;
    focused = i;
    if (move) scrollToRow(i, false);
    draw(false);
    var el = document.getElementById("wf-" + i);
    if (el) {
      el.tabIndex = 0;
      if (move) el.focus({ preventScroll: true });
    }
  }
  function markSelected(i) {
    var old = document.getElementById("wf-" + selected);
    if (old) old.setAttribute("aria-selected", "false");
    selected = i;
    var el = document.getElementById("wf-" + i);
    if (el) el.setAttribute("aria-selected", "true");
  }
  function select(i, opts) {
    opts = opts || {};
    if (!rows[i]) return;
    reveal(i);
    if (opts.scroll) scrollToRow(i, true);
    redraw();
    markSelected(i);
    setFocus(i, opts.focus !== false);
    var id = rows[i][ID];
    if (history.replaceState) history.replaceState(null, "", "#span-" + id);
    loadDetail(id);
  }
  function selectId(id, opts) {
    if (indexById[id] !== undefined) { select(indexById[id], opts); return; }
    if (!windowed) return;
    getJson(rowsUrl + "?span=" + encodeURIComponent(id) + "&limit=" + block).then(function (w) {
      store(w.offset, w.rows, w.badges);
      if (indexById[id] !== undefined) select(indexById[id], opts);
    }).catch(function (err) { status.textContent = "Could not find the span: " + err.message; });
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

  // ---------------------------------------------------------------- next error / slow span

  function next(kind) {
    var flag = kind === "error" ? ERROR : SLOW;
    var from = selected >= 0 ? selected : focused;
    if (!windowed) {
      for (var k = 1; k <= n; k++) {
        var i = (from + k + n) % n;
        if (rows[i][FLAGS] & flag) { select(i, { scroll: true }); return; }
      }
      status.textContent = kind === "error" ? "No errors in this trace." : "No slow spans in this trace.";
      return;
    }
    getJson(nextUrl + "?kind=" + kind + "&after=" + from).then(function (res) {
      if (res.index === null) {
        status.textContent = kind === "error" ? "No errors in this trace." : "No slow spans in this trace.";
        return null;
      }
      return ensure(res.index).then(function (i) { select(i, { scroll: true }); });
    }).catch(function (err) { status.textContent = "Could not look it up: " + err.message; });
  }

  // ---------------------------------------------------------------- minimap and zoom

  var mm = document.getElementById("wf-minimap");
  var canvas = document.getElementById("wf-minimap-canvas");
  var mmView = document.getElementById("wf-minimap-view");
  var density = data.density || [];

  function drawMinimap() {
    if (!canvas) return;
    var w = canvas.clientWidth, h = canvas.clientHeight, dpr = window.devicePixelRatio || 1;
    if (!w || !h) return;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var most = 1;
    density.forEach(function (c) { if (c[0] > most) most = c[0]; });
    var bw = w / Math.max(1, density.length);
    var css = getComputedStyle(mm);
    density.forEach(function (c, k) {
      if (!c[0]) return;
      var bh = Math.max(2, Math.sqrt(c[0] / most) * (h - 2));
      ctx.fillStyle = css.getPropertyValue("--mm-span").trim() || "#8aa4d6";
      ctx.fillRect(k * bw, h - bh, Math.max(1, bw - 0.5), bh);
      if (c[1]) {
        var eh = Math.max(3, Math.sqrt(c[1] / most) * (h - 2));
        ctx.fillStyle = css.getPropertyValue("--mm-error").trim() || "#d33b2f";
        ctx.fillRect(k * bw, h - eh, Math.max(1, bw - 0.5), eh);
      }
    });
    placeViewport();
  }
  function placeViewport() {
    var l = view.start / total * 100, w = (view.end - view.start) / total * 100;
    mmView.style.left = l + "%";
    mmView.style.width = Math.max(0.5, w) + "%";
    mmView.setAttribute("aria-valuenow", Math.round(l));
    mm.classList.toggle("zoomed", w < 99.9);
  }
  function setView(start, span) {
    span = Math.max(Math.min(span, total), Math.min(total, 0.001));
    start = Math.max(0, Math.min(start, total - span));
    view.start = start;
    view.end = start + span;
    placeViewport();
    drawAxis();
    placeBars();
  }
  function zoom(factor) {
    var span = view.end - view.start, mid = view.start + span / 2;
    var next_ = Math.min(total, span * factor);
    setView(mid - next_ / 2, next_);
  }
  function mmTime(clientX) {
    var rect = mm.getBoundingClientRect();
    return Math.max(0, Math.min(1, (clientX - rect.left) / rect.width)) * total;
  }
  var drag = null;
  mm.addEventListener("pointerdown", function (event) {
    var t = mmTime(event.clientX), span = view.end - view.start;
    if (t < view.start || t > view.end) setView(t - span / 2, span);
    drag = { grab: mmTime(event.clientX) - view.start };
    mm.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  mm.addEventListener("pointermove", function (event) {
    if (!drag) return;
    setView(mmTime(event.clientX) - drag.grab, view.end - view.start);
  });
  mm.addEventListener("pointerup", function () { drag = null; });
  mm.addEventListener("pointercancel", function () { drag = null; });
  mmView.addEventListener("keydown", function (event) {
    var span = view.end - view.start;
    if (event.key === "ArrowLeft") setView(view.start - span / 10, span);
    else if (event.key === "ArrowRight") setView(view.start + span / 10, span);
    else return;
    event.preventDefault();
  });

  // ---------------------------------------------------------------- events

  list.addEventListener("click", function (event) {
    var rowEl = event.target.closest(".wf-row");
    if (!rowEl || !rows[+rowEl.getAttribute("data-i")]) return;
    var i = +rowEl.getAttribute("data-i");
    if (event.target.closest(".caret")) {
      setCollapsed(i, !collapsed.has(i));
      setFocus(i, true);
      return;
    }
    select(i);
  });

  function step(i, by) {
    var v = toPosition(i) + by;
    return v >= 0 && v < visibleCount ? toIndex(v) : -1;
  }
  body.addEventListener("keydown", function (event) {
    if (!n) return;
    if (focused < 0) focused = 0;
    var i = focused, j, r = rows[i];
    switch (event.key) {
      case "ArrowDown": j = step(i, 1); if (j >= 0) setFocus(j, true); break;
      case "ArrowUp": j = step(i, -1); if (j >= 0) setFocus(j, true); break;
      case "PageDown": j = step(i, Math.min(visibleCount - 1 - toPosition(i), 20)); if (j >= 0) setFocus(j, true); break;
      case "PageUp": j = step(i, -Math.min(toPosition(i), 20)); if (j >= 0) setFocus(j, true); break;
      case "Home": setFocus(0, true); break;
      case "End": setFocus(toIndex(visibleCount - 1), true); break;
      case "ArrowRight":
        if (r && r[SIZE] > 1) { if (collapsed.has(i)) setCollapsed(i, false); else setFocus(i + 1, true); }
        break;
      case "ArrowLeft":
        if (r && r[SIZE] > 1 && !collapsed.has(i)) setCollapsed(i, true);
        else if (r && r[PARENT] >= 0) setFocus(r[PARENT], true);
        break;
      case "Enter": case " ": select(i); break;
      default: return;
    }
    event.preventDefault();
  });

  root.querySelectorAll("[data-action]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      switch (btn.getAttribute("data-action")) {
        case "expand-all": setAll(true); break;
        case "collapse-all": setAll(false); break;
        case "next-error": next("error"); break;
        case "next-slow": next("slow"); break;
        case "zoom-in": zoom(0.5); break;
        case "zoom-out": zoom(2); break;
        case "zoom-fit": setView(0, total); break;
      }
    });
  });

  // The storyline's steps select their span.
  document.addEventListener("click", function (event) {
    var b = event.target.closest("button[data-span]");
    if (b) selectId(b.getAttribute("data-span"), { scroll: true });
  });

  if (windowed) {
    window.addEventListener("scroll", schedule, { passive: true });
  }
  window.addEventListener("resize", function () { drawAxis(); drawMinimap(); schedule(); });

  rebuildRanges();
  focused = n ? 0 : -1;
  redraw();
  drawAxis();
  drawMinimap();
  var m = /^#span-([0-9a-f]+)$/i.exec(location.hash);
  if (m) selectId(m[1].toLowerCase(), { scroll: true, focus: false });
})();
