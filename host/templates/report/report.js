// runner-scaler's simulation report: draws the data in #report-data as
// SVG. Hand-written (no library, nothing fetched): time panels per run,
// the wait distributions and the cost of all runs, the tables.
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var palette = ["#1f4fb4", "#e5552a", "#2a9d5c", "#8a3ffc", "#b8860b", "#0f8b8d", "#c2185b", "#5d4037"];
  var colour = {
    waiting: "#e5552a", running: "#9aa3ad", instances: "#f0a35e", desired: "#1f4fb4",
    warmed: "#2a9d5c", peak: "#7a2d12"
  };
  var W = 1000;
  var M = { left: 56, right: 16, top: 10, bottom: 28 };
  var PLOT = W - M.left - M.right;
  var root = document.getElementById("report");

  function el(name, attrs, parent, text) {
    var node = document.createElement(name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function svgEl(name, attrs, parent, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  // As the terminal writes durations: 45s, 2m30s, 1h05m.
  function duration(s) {
    s = Math.round(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + (s % 60 ? pad(s % 60) + "s" : "");
    return Math.floor(s / 3600) + "h" + pad(Math.floor((s % 3600) / 60)) + "m";
  }
  function money(x) { return "$" + x.toFixed(2); }
  function fmt(x) { return x == null ? "–" : (Math.round(x * 10) / 10).toString(); }
  function niceStep(range, count) {
    var raw = range / Math.max(1, count);
    var p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= raw) return steps[i] * p;
    return 10 * p;
  }
  function maxOf(arrays) {
    var m = 0;
    arrays.forEach(function (a) { (a || []).forEach(function (v) { if (v != null && v > m) m = v; }); });
    return m;
  }

  // Steps merged when a panel has fewer pixels than steps: means of means,
  // peaks of peaks.
  function merge(values, factor, how) {
    if (!values || factor <= 1) return values;
    var out = [];
    for (var i = 0; i < values.length; i += factor) {
      var sum = 0, n = 0, max = null;
      for (var j = i; j < Math.min(values.length, i + factor); j++) {
        var v = values[j];
        if (v == null) continue;
        sum += v; n++;
        if (max == null || v > max) max = v;
      }
      out.push(n === 0 ? null : how === "max" ? max : sum / n);
    }
    return out;
  }
  function mergeLast(values, factor) {
    if (!values || factor <= 1) return values;
    var out = [];
    for (var i = 0; i < values.length; i += factor) {
      var last = null;
      for (var j = i; j < Math.min(values.length, i + factor); j++) if (values[j] != null) last = values[j];
      out.push(last);
    }
    return out;
  }

  // Local time of a second of the run, from the axis marks (whole hours or
  // midnights on the pool's clock).
  var marks = data.axis;
  function localLabel(t) {
    var lo = 0, hi = marks.length - 1, found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (marks[mid][0] <= t) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (found < 0) return "";
    var mark = marks[found];
    var minutes = parseInt(mark[1].slice(0, 2), 10) * 60 + parseInt(mark[1].slice(3), 10)
      + Math.floor((t - mark[0]) / 60);
    return mark[2] + " " + pad(Math.floor(minutes / 60) % 24) + ":" + pad(minutes % 60);
  }

  function legend(parent, items) {
    var box = el("div", { "class": "legend" }, parent);
    items.forEach(function (item) {
      var span = el("span", {}, box);
      var cls = "swatch" + (item.line ? " line" : "") + (item.dashed ? " dashed" : "");
      el("i", { "class": cls, style: "background:" + item.colour }, span);
      span.appendChild(document.createTextNode(item.name));
    });
  }

  // A panel over the run's time: business hours, grid, axis; `draw`
  // adds the series; `tip(i)` the lines of the tooltip at step i.
  function timePanel(parent, kind, run, height, yMax, yLabel, draw, tip) {
    var fig = el("figure", {}, parent);
    var svg = svgEl("svg", {
      "class": "panel", viewBox: "0 0 " + W + " " + height, "data-kind": kind, "data-run": String(run),
      role: "img"
    }, fig);
    var plotH = height - M.top - M.bottom;
    var t0 = data.from, t1 = data.end;
    var x = function (t) { return M.left + (t - t0) / (t1 - t0) * PLOT; };
    var y = function (v) { return M.top + plotH - (v / yMax) * plotH; };
    data.business.forEach(function (b) {
      svgEl("rect", { "class": "business", x: x(b[0]).toFixed(1), y: M.top, width: Math.max(0.5, x(b[1]) - x(b[0])).toFixed(1), height: plotH }, svg);
    });
    yAxis(svg, yMax, y, yLabel, height);
    timeAxis(svg, x, height);
    // Steps as the panel shows them: merged when they outnumber pixels.
    var pixels = Math.max(200, (svg.getBoundingClientRect().width || W) * PLOT / W);
    var factor = Math.max(1, Math.ceil(data.runs[0].waiting.length / pixels));
    var step = data.step * factor;
    var xs = function (i) { return x(Math.min(t1, t0 + i * step)).toFixed(1); };
    draw(svg, xs, y, factor);
    cursor(fig, svg, x, function (t) {
      var i = Math.floor((t - t0) / step);
      var lines = tip(i, factor);
      return lines ? localLabel(t0 + i * step) + "\n" + lines.join("\n") : null;
    });
    return svg;
  }

  function yAxis(svg, yMax, y, label, height) {
    var step = niceStep(yMax, 4);
    for (var v = 0; v <= yMax + 1e-9; v += step) {
      svgEl("line", { "class": "grid", x1: M.left, x2: W - M.right, y1: y(v).toFixed(1), y2: y(v).toFixed(1) }, svg);
      svgEl("text", { x: M.left - 6, y: (y(v) + 4).toFixed(1), "text-anchor": "end" }, svg, label(v));
    }
    svgEl("line", { "class": "axis", x1: M.left, x2: M.left, y1: M.top, y2: height - M.bottom }, svg);
  }

  // Labels every hour, few hours, day, few days or week (Mondays), as
  // many as fit; a faint line at every midnight between.
  function timeAxis(svg, x, height) {
    if (!marks.length) return;
    var pxPerHour = PLOT / ((data.end - data.from) / 3600);
    var choices = [1, 2, 3, 6, 12, 24, 48, 72, 168, 336];
    var every = 720;
    for (var i = 0; i < choices.length; i++) {
      var room = choices[i] < 24 ? 48 : 96;
      if (choices[i] * pxPerHour >= room) { every = choices[i]; break; }
    }
    var midnights = 0;
    marks.forEach(function (m) {
      var hour = parseInt(m[1].slice(0, 2), 10);
      var keep;
      if (m[3]) {
        keep = every <= 24 || (every >= 168 ? m[2].slice(0, 3) === "Mon" : midnights % (every / 24) === 0);
        midnights++;
      } else keep = every < 24 && m[1].slice(3) === "00" && hour % every === 0;
      var px = x(m[0]).toFixed(1);
      if (!keep) {
        if (m[3] && 24 * pxPerHour >= 6) svgEl("line", { "class": "grid", x1: px, x2: px, y1: M.top, y2: height - M.bottom }, svg);
        return;
      }
      svgEl("line", { "class": m[3] ? "axis" : "grid", x1: px, x2: px, y1: M.top, y2: height - M.bottom }, svg);
      svgEl("text", { x: px, y: height - M.bottom + 16, "text-anchor": "middle" }, svg, m[3] ? m[2] : m[1]);
    });
    svgEl("line", { "class": "axis", x1: M.left, x2: W - M.right, y1: height - M.bottom, y2: height - M.bottom }, svg);
  }

  // A dashed line and a box of values under the pointer.
  function cursor(fig, svg, x, text) {
    var line = svgEl("line", { "class": "cursor", y1: M.top, y2: svg.viewBox.baseVal.height - M.bottom, visibility: "hidden" }, svg);
    var box = el("div", { "class": "tip" }, fig);
    svg.addEventListener("mousemove", function (event) {
      var r = svg.getBoundingClientRect();
      var vx = (event.clientX - r.left) * W / r.width;
      if (vx < M.left || vx > W - M.right) { line.setAttribute("visibility", "hidden"); box.style.display = "none"; return; }
      var t = data.from + (vx - M.left) / PLOT * (data.end - data.from);
      var content = text(t);
      if (!content) return;
      line.setAttribute("x1", vx); line.setAttribute("x2", vx); line.setAttribute("visibility", "visible");
      box.textContent = content;
      box.style.display = "block";
      box.style.left = Math.min(r.width - 200, event.clientX - r.left + 12) + "px";
      box.style.top = "8px";
    });
    svg.addEventListener("mouseleave", function () { line.setAttribute("visibility", "hidden"); box.style.display = "none"; });
  }

  // A step line through `values`, broken where a value is missing.
  function stepPath(values, xs, y) {
    var d = "", open = false;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v == null) { open = false; continue; }
      d += (open ? "V" : "M" + xs(i) + " ") + y(v).toFixed(1) + "H" + xs(i + 1);
      open = true;
    }
    return d;
  }
  // The area between `lower` and `upper` as steps, one shape per stretch
  // of known values.
  function areaPath(lower, upper, xs, y) {
    var d = "", i = 0;
    while (i < upper.length) {
      if (upper[i] == null) { i++; continue; }
      var j = i;
      while (j < upper.length && upper[j] != null) j++;
      var top = "M" + xs(i) + " " + y(upper[i]).toFixed(1), bottom = "";
      for (var k = i; k < j; k++) {
        top += "V" + y(upper[k]).toFixed(1) + "H" + xs(k + 1);
        bottom = "V" + y(lower[k] || 0).toFixed(1) + "H" + xs(k) + bottom;
      }
      d += top + bottom + "Z";
      i = j;
    }
    return d;
  }
  function sum(a, b) { return a.map(function (v, i) { return v == null ? null : v + (b[i] || 0); }); }

  function header() {
    document.getElementById("heading").textContent = data.heading;
    var text = "Time on the pool's clock (" + data.zone + "), from " + data.startLocal + ". ";
    if (data.warmup) text += "Counted from --report-from on; the simulation ran from the trace's start to warm up. ";
    text += "Shaded: business hours, Monday to Friday 08:00–18:00. ";
    if (data.aggregated) text += "Each step is " + duration(data.step) + " (ticks every " + duration(data.tick) + "): areas and lines are its means, the thin dark lines its peaks.";
    document.getElementById("window").textContent = text;
  }

  function runSection(run, r, queueMax, capacityMax) {
    var section = el("section", { "class": "run" }, root);
    var h2 = el("h2", {}, section);
    el("i", { "class": "swatch", style: "background:" + palette[r % palette.length] }, h2);
    h2.appendChild(document.createTextNode(" " + run.label));
    el("span", { "class": "figures" }, h2, "wait p50 " + duration(run.figures.p50) + ", p95 " + duration(run.figures.p95) +
      ", max " + duration(run.figures.max) + " · " + money(run.figures.cost));
    el("h3", {}, section, "Jobs in the queue");
    timePanel(section, "queue", r, 200, queueMax, fmt, function (svg, xs, y, f) {
      var running = merge(run.running, f), waiting = merge(run.waiting, f);
      var zero = running.map(function (v) { return v == null ? null : 0; });
      var total = sum(waiting, running);
      svgEl("path", { d: areaPath(zero, running, xs, y), fill: colour.running, "fill-opacity": 0.75 }, svg);
      svgEl("path", { d: areaPath(running, total, xs, y), fill: colour.waiting, "fill-opacity": 0.8 }, svg);
      if (run.queuePeak) svgEl("path", { d: stepPath(merge(run.queuePeak, f, "max"), xs, y), fill: "none", stroke: colour.peak, "stroke-width": 0.6, "stroke-opacity": 0.5 }, svg);
    }, function (i, f) {
      var w = merge(run.waiting, f)[i], n = merge(run.running, f)[i];
      if (w == null) return null;
      return ["waiting " + fmt(w), "running " + fmt(n)];
    });
    var items = [{ name: "waiting for a runner", colour: colour.waiting }, { name: "running", colour: colour.running }];
    if (run.queuePeak) items.push({ name: "peak (waiting + running)", colour: colour.peak, line: true });
    legend(section, items);

    el("h3", {}, section, "Capacity");
    timePanel(section, "capacity", r, 200, capacityMax, fmt, function (svg, xs, y, f) {
      if (run.instancesPeak) svgEl("path", { d: stepPath(merge(run.instancesPeak, f, "max"), xs, y), fill: "none", stroke: colour.peak, "stroke-width": 0.6, "stroke-opacity": 0.5 }, svg);
      svgEl("path", { d: stepPath(merge(run.instances, f), xs, y), fill: "none", stroke: colour.instances, "stroke-width": 4, "stroke-opacity": 0.8 }, svg);
      svgEl("path", { d: stepPath(merge(run.desired, f), xs, y), fill: "none", stroke: colour.desired, "stroke-width": 1.4 }, svg);
      if (run.warmed) svgEl("path", { d: stepPath(merge(run.warmed, f), xs, y), fill: "none", stroke: colour.warmed, "stroke-width": 1.6, "stroke-dasharray": "5 3" }, svg);
    }, function (i, f) {
      var n = merge(run.instances, f)[i];
      if (n == null) return null;
      var lines = ["instances " + fmt(n), "desired " + fmt(merge(run.desired, f)[i])];
      if (run.warmed) lines.push("warmed in the pool " + fmt(merge(run.warmed, f)[i]));
      return lines;
    });
    items = [{ name: "instances", colour: colour.instances, line: true }, { name: "desired capacity", colour: colour.desired, line: true }];
    if (run.warmed) items.push({ name: "warmed in the warm pool", colour: colour.warmed, line: true });
    if (run.instancesPeak) items.push({ name: "peak instances", colour: colour.peak, line: true });
    legend(section, items);
  }

  function waitsPanel() {
    var section = el("section", { "class": "run" }, root);
    el("h2", {}, section, "Waits: share of jobs that started within a time");
    var series = data.runs.map(function (run, r) { return { label: run.label, cdf: run.waits, colour: palette[r % palette.length] }; });
    if (data.recorded) series.push({ label: "recorded (the export)", cdf: data.recorded, colour: "#1d232b", dashed: true });
    // To the slowest 99th percentile: maxima are in the table.
    var xMax = 60;
    series.forEach(function (s) {
      var xs = s.cdf[0], ys = s.cdf[1];
      for (var k = 0; k < ys.length; k++) if (ys[k] >= 0.99) { xMax = Math.max(xMax, xs[k] * 1.05); break; }
    });
    var height = 260, plotH = height - M.top - M.bottom;
    var svg = svgEl("svg", { "class": "panel", viewBox: "0 0 " + W + " " + height, "data-kind": "waits", "data-run": "all", role: "img" }, el("figure", {}, section));
    var x = function (s) { return M.left + Math.min(s, xMax) / xMax * PLOT; };
    var y = function (f) { return M.top + plotH - f * plotH; };
    yAxis(svg, 1, y, function (v) { return Math.round(v * 100) + "%"; }, height);
    var tick = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400].filter(function (s) { return s / xMax * PLOT >= 70; })[0] || 86400;
    for (var s = 0; s <= xMax; s += tick) {
      svgEl("line", { "class": s ? "grid" : "axis", x1: x(s).toFixed(1), x2: x(s).toFixed(1), y1: M.top, y2: height - M.bottom }, svg);
      svgEl("text", { x: x(s).toFixed(1), y: height - M.bottom + 16, "text-anchor": "middle" }, svg, duration(s));
    }
    svgEl("line", { "class": "axis", x1: M.left, x2: W - M.right, y1: height - M.bottom, y2: height - M.bottom }, svg);
    series.forEach(function (s) {
      var xs = s.cdf[0], ys = s.cdf[1];
      if (!xs.length) return;
      var d = "M" + x(0).toFixed(1) + " " + y(0).toFixed(1), prev = 0;
      for (var k = 0; k < xs.length; k++) {
        d += "H" + x(xs[k]).toFixed(1) + "V" + y(ys[k]).toFixed(1);
        prev = ys[k];
      }
      d += "H" + x(xMax).toFixed(1);
      var attrs = { d: d, fill: "none", stroke: s.colour, "stroke-width": 2 };
      if (s.dashed) attrs["stroke-dasharray"] = "6 4";
      svgEl("path", attrs, svg);
    });
    legend(section, series.map(function (s) { return { name: s.label, colour: s.colour, line: !s.dashed, dashed: s.dashed }; }));
    el("p", { "class": "note" }, section, "A line further up and to the left is better: more jobs started sooner. The x axis ends past the slowest run's 99th percentile; the maxima are in the table.");
  }

  function costPanel() {
    var section = el("section", { "class": "run" }, root);
    el("h2", {}, section, "Cost as it accumulates");
    var yMax = Math.max(0.01, maxOf(data.runs.map(function (r) { return r.cost; }))) * 1.08;
    timePanel(section, "cost", "all", 240, yMax, money, function (svg, xs, y, f) {
      data.runs.forEach(function (run, r) {
        var cost = mergeLast(run.cost, f);
        var d = "M" + xs(0) + " " + y(0).toFixed(1);
        for (var i = 0; i < cost.length; i++) if (cost[i] != null) d += "L" + xs(i + 1) + " " + y(cost[i]).toFixed(1);
        svgEl("path", { d: d, fill: "none", stroke: palette[r % palette.length], "stroke-width": 2 }, svg);
      });
    }, function (i, f) {
      return data.runs.map(function (run) {
        var c = mergeLast(run.cost, f)[i];
        return run.label + " " + (c == null ? "–" : money(c));
      });
    });
    legend(section, data.runs.map(function (run, r) { return { name: run.label, colour: palette[r % palette.length], line: true }; }));
  }

  function table(parent, columns, rows) {
    var t = el("table", {}, parent);
    var head = el("tr", {}, el("thead", {}, t));
    el("th", {}, head, "");
    columns.forEach(function (c) { el("th", {}, head, c); });
    var body = el("tbody", {}, t);
    rows.forEach(function (row) {
      var tr = el("tr", {}, body);
      var name = row[0];
      var trimmed = name.replace(/^\s+/, "");
      el("td", trimmed.length < name.length ? { "class": "detail" } : {}, tr, trimmed);
      row.slice(1).forEach(function (cell) { el("td", {}, tr, cell); });
    });
  }

  function tables() {
    var section = el("section", { "class": "run" }, root);
    el("h2", {}, section, "Figures");
    table(section, data.table.columns, data.table.rows);
    if (data.calibration) {
      el("h2", {}, section, "Calibration: recorded waits beside simulated ones");
      el("p", { "class": "note" }, section,
        "What " + data.calibration.jobs + " jobs waited in reality (the export's started − queued) and what the same jobs waited in each run. " +
        "The column of the policy and settings you run today should come close to 'recorded'; if not, tune --boot, --idle-timeout and --tick before trusting the comparison.");
      table(section, data.calibration.columns, data.calibration.rows);
    }
  }

  try {
    header();
    var queueMax = Math.max(1, maxOf(data.runs.map(function (r) { return r.queuePeak || sum(r.waiting, r.running); }))) * 1.08;
    var capacityMax = Math.max(1, maxOf([].concat.apply([], data.runs.map(function (r) { return [r.instancesPeak, r.instances, r.desired, r.warmed]; })))) * 1.08;
    data.runs.forEach(function (run, r) { runSection(run, r, queueMax, capacityMax); });
    waitsPanel();
    costPanel();
    tables();
    document.documentElement.setAttribute("data-rendered", String(document.querySelectorAll("svg.panel").length));
  } catch (error) {
    el("p", { "class": "error" }, root, "The report could not be drawn: " + error);
    var rootEl = document.documentElement;
    rootEl.setAttribute("data-errors", (rootEl.getAttribute("data-errors") || "") + String(error) + "\n");
  }
})();
