// The run report's renderer. The data is the JSON report (schemas/report.schema.json),
// embedded in the page; text only ever reaches the page as textContent, never as markup.
// Scenario bodies are built when first opened, so a large run opens fast.
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var ORDER = { failed: 0, interrupted: 1, flaky: 2, passed: 3, skipped: 4 };
  var VERDICTS = ["failed", "interrupted", "flaky", "passed", "skipped"];
  // Failed scenarios drawn open at the start (the rest open on a click).
  var OPEN_AT_START = 3;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function ms(value) {
    if (value === 0) return "0";
    if (value >= 10000) return (value / 1000).toFixed(1) + " s";
    if (value >= 1000) return (value / 1000).toFixed(2) + " s";
    return value.toFixed(value < 10 ? 1 : 0) + " ms";
  }
  function folder(file) {
    var cut = file.lastIndexOf("/");
    return cut < 0 ? "." : file.slice(0, cut);
  }
  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
  }
  function json(value) {
    return JSON.stringify(value, null, 2);
  }

  // Failed first, then interrupted, flaky, passed, skipped; in file order within each.
  function rank(s) { return s.verdict in ORDER ? ORDER[s.verdict] : VERDICTS.length; }
  var scenarios = data.scenarios.map(function (s, i) { s.key = i; return s; });
  scenarios.sort(function (a, b) {
    return (rank(a) - rank(b)) || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) || (a.iteration - b.iteration);
  });

  // ---- filters
  var app = document.getElementById("app");
  var filters = el("div", "panel filters");
  var search = el("input");
  search.type = "search";
  search.placeholder = "Search names, files, tags, failures…";
  search.id = "search";
  filters.appendChild(search);
  var verdicts = {};
  VERDICTS.forEach(function (v) {
    var n = scenarios.filter(function (s) { return s.verdict === v; }).length;
    if (!n && v === "interrupted") return;
    var label = el("label", "toggle");
    var box = el("input");
    box.type = "checkbox";
    box.checked = true;
    box.id = "show-" + v;
    verdicts[v] = box;
    label.appendChild(box);
    label.appendChild(el("span", "chip " + v + (n ? "" : " zero"), v + " " + n));
    filters.appendChild(label);
  });
  function select(id, all, values) {
    var node = el("select");
    node.id = id;
    var first = el("option", null, all);
    first.value = "";
    node.appendChild(first);
    values.forEach(function (v) { var o = el("option", null, v); o.value = v; node.appendChild(o); });
    filters.appendChild(node);
    return node;
  }
  function unique(list) { return list.filter(function (v, i) { return list.indexOf(v) === i; }).sort(); }
  var folders = select("folder", "all folders", unique(scenarios.map(function (s) { return folder(s.file); })));
  var tags = select("tag", "all tags", unique([].concat.apply([], scenarios.map(function (s) { return s.tags; }))));
  var count = el("span", "count");
  filters.appendChild(count);
  app.appendChild(filters);

  // ---- the list
  var list = el("ol", "scenarios");
  list.id = "scenarios";
  app.appendChild(list);
  var empty = el("div", "empty", "No scenario matches.");
  app.appendChild(empty);
  var rows = scenarios.map(function (s, position) {
    var li = el("li", "scenario " + s.verdict);
    li.dataset.verdict = s.verdict;
    var details = el("details");
    var summary = el("summary");
    summary.appendChild(el("span", "verdict " + s.verdict, s.verdict));
    summary.appendChild(el("span", "name", s.name));
    summary.appendChild(el("span", "file", s.file + (s.iteration ? " #" + (s.iteration + 1) : "")));
    s.tags.forEach(function (t) { summary.appendChild(el("span", "tag", t)); });
    var attempts = s.attempts.length > 1 ? " · " + s.attempts.length + " attempts" : "";
    summary.appendChild(el("span", "took", ms(s.duration_ms) + attempts));
    details.appendChild(summary);
    li.appendChild(details);
    var built = false;
    function build() {
      if (built) return;
      built = true;
      details.appendChild(scenarioBody(s));
    }
    details.addEventListener("toggle", function () { if (details.open) build(); });
    if (s.verdict === "failed" && position < OPEN_AT_START) { build(); details.open = true; }
    var failureText = s.attempts.map(function (a) { return a.failure ? a.failure.message : ""; }).join(" ");
    var haystack = [s.name, s.file, s.tags.join(" "), failureText].join("\n").toLowerCase();
    list.appendChild(li);
    return { scenario: s, node: li, haystack: haystack };
  });

  function applyFilters() {
    var text = search.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var s = row.scenario;
      var visible = (!verdicts[s.verdict] || verdicts[s.verdict].checked) &&
        (!folders.value || folder(s.file) === folders.value) &&
        (!tags.value || s.tags.indexOf(tags.value) >= 0) &&
        (!text || row.haystack.indexOf(text) >= 0);
      row.node.hidden = !visible;
      if (visible) shown++;
    });
    count.textContent = "showing " + shown + " of " + rows.length;
    empty.hidden = shown > 0;
  }
  [search, folders, tags].forEach(function (n) { n.addEventListener("input", applyFilters); });
  Object.keys(verdicts).forEach(function (v) { verdicts[v].addEventListener("change", applyFilters); });
  applyFilters();

  // ---- one scenario: its attempts side by side on one time scale
  function scenarioBody(s) {
    var body = el("div", "body");
    var grid = el("div", "attempts");
    grid.style.setProperty("--attempts", s.attempts.length);
    var scale = Math.max.apply(null, s.attempts.map(function (a) { return a.duration_ms; }).concat([1]));
    s.attempts.forEach(function (a, i) { grid.appendChild(attemptPanel(s, a, i, scale)); });
    body.appendChild(grid);
    return body;
  }

  function connectionsOf(a) {
    var names = [];
    a.frames.forEach(function (f) { if (names.indexOf(f.connection) < 0) names.push(f.connection); });
    Object.keys(a.frames_omitted || {}).forEach(function (n) { if (names.indexOf(n) < 0) names.push(n); });
    return names;
  }

  function attemptPanel(s, a, index, scale) {
    var panel = el("section", "attempt " + a.status);
    var id = "s" + s.key + "a" + index;
    panel.id = id;
    var title = s.attempts.length > 1 ? "attempt " + (index + 1) + " of " + s.attempts.length + " — " : "";
    panel.appendChild(el("h3", null, title + a.status + " in " + ms(a.duration_ms)));
    [a.failure].concat(a.teardown_failures).forEach(function (f) {
      if (!f) return;
      var box = el("div", "failure");
      box.appendChild(el("pre", null, f.rendered));
      panel.appendChild(box);
    });
    var ids = Object.keys(a.ids);
    if (ids.length) {
      var table = el("table", "kv ids");
      table.appendChild(el("caption", "muted", "minted IDs"));
      ids.forEach(function (k) {
        var tr = el("tr");
        tr.appendChild(el("th", null, k));
        tr.appendChild(el("td", "mono", a.ids[k]));
        table.appendChild(tr);
      });
      panel.appendChild(table);
    }
    var connections = connectionsOf(a);
    panel.appendChild(timeline(a, id, connections, scale));
    panel.appendChild(stepsTable(a, id));
    panel.appendChild(frameLists(a, id, connections));
    return panel;
  }

  function position(at, scale) { return Math.min(100, Math.max(0, at / scale * 100)) + "%"; }

  function lane(name) {
    var row = el("div", "lane");
    row.appendChild(el("div", "lane-name", name));
    var track = el("div", "track");
    row.appendChild(track);
    return { row: row, track: track };
  }

  function timeline(a, id, connections, scale) {
    var box = el("div", "timeline");
    var axis = lane("");
    axis.row.classList.add("axis");
    var step = niceStep(scale);
    for (var t = 0; t <= scale + step / 2; t += step) {
      var tick = el("span", "tick", ms(t));
      tick.style.left = position(t, scale);
      axis.track.appendChild(tick);
    }
    box.appendChild(axis.row);
    var steps = lane("steps");
    a.steps.forEach(function (st) {
      var bar = el("span", "step-bar " + st.status);
      bar.style.left = position(st.at_ms || 0, scale);
      bar.style.width = "calc(" + position(st.duration_ms, scale) + " + 0px)";
      bar.title = "#" + (st.index + 1) + " " + st.label + " — " + st.status + ", " + ms(st.duration_ms);
      bar.addEventListener("click", function () { reveal(id + "-step" + st.index); });
      steps.track.appendChild(bar);
    });
    box.appendChild(steps.row);
    connections.forEach(function (name, lanes) {
      var conn = lane(name);
      conn.row.title = name;
      a.frames.forEach(function (f, i) {
        if (f.connection !== name) return;
        var mark = el("button", "mark " + f.direction + (f.schema_violation ? " violation" : "") + (f.failed ? " failed" : ""));
        mark.type = "button";
        mark.style.left = position(f.at_ms, scale);
        mark.title = "+" + ms(f.at_ms) + " " + f.direction + ": " + f.data.slice(0, 200);
        mark.addEventListener("click", function () { reveal(id + "-f" + i, true, id + "-conn-" + lanes); });
        conn.track.appendChild(mark);
      });
      var omitted = (a.frames_omitted || {})[name];
      if (omitted) conn.row.firstChild.textContent = name + " (+" + omitted + ")";
      box.appendChild(conn.row);
    });
    var legend = el("div", "legend");
    [["sent", "var(--sent)"], ["received", "var(--received)"], ["closed", "var(--closed)"],
     ["schema violation", "var(--violation)"], ["failed an expectation", "var(--fail)"]].forEach(function (l) {
      var item = el("span", null, l[0]);
      var swatch = el("i");
      swatch.style.background = l[1];
      item.insertBefore(swatch, item.firstChild);
      legend.appendChild(item);
    });
    box.appendChild(legend);
    return box;
  }

  function niceStep(max) {
    var rough = max / 6;
    var magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * magnitude >= rough) return steps[i] * magnitude;
    return 10 * magnitude;
  }

  function stepsTable(a, id) {
    var table = el("table", "steps");
    var head = el("tr");
    ["#", "step", "line", "status", "start", "took"].forEach(function (h) { head.appendChild(el("th", null, h)); });
    table.appendChild(head);
    a.steps.forEach(function (st) {
      var tr = el("tr", st.status);
      tr.id = id + "-step" + st.index;
      tr.appendChild(el("td", "num", String(st.index + 1)));
      var cell = el("td");
      cell.appendChild(el("div", "label", st.label));
      (st.observations || []).forEach(function (o) { cell.appendChild(observation(o)); });
      tr.appendChild(cell);
      tr.appendChild(el("td", "num", String(st.line)));
      tr.appendChild(el("td", null)).appendChild(el("span", "status " + st.status, st.status));
      tr.appendChild(el("td", "num", "+" + ms(st.at_ms || 0)));
      tr.appendChild(el("td", "num", ms(st.duration_ms)));
      table.appendChild(tr);
    });
    return table;
  }

  function observation(o) {
    var box = el("div", "observation " + (o.passed ? "passed" : "failed"));
    box.appendChild(el("div", "target", o.store + ": " + o.target));
    var expected = el("div");
    expected.appendChild(el("h4", null, "expected"));
    expected.appendChild(el("pre", "expected", json(o.expected)));
    var actual = el("div");
    actual.appendChild(el("h4", null, o.passed ? "actual" : "actual (did not match)"));
    actual.appendChild(el("pre", "actual", json(o.actual)));
    box.appendChild(expected);
    box.appendChild(actual);
    return box;
  }

  // Per connection a collapsible list, drawn when opened: open at first where a frame
  // failed, or when the attempt has only a few connections.
  function frameLists(a, id, connections) {
    var box = el("div", "frames");
    connections.forEach(function (name) {
      var frames = [];
      a.frames.forEach(function (f, i) { if (f.connection === name) frames.push([f, i]); });
      var omitted = (a.frames_omitted || {})[name] || 0;
      var failed = frames.some(function (p) { return p[0].failed; });
      var heading = name + ": " + frames.length + " frame" + (frames.length === 1 ? "" : "s");
      if (omitted) heading += (frames.length ? " shown, " : " — ") + omitted + " not kept";
      if (failed) heading += " · ✗ one failed an expectation";
      var group = el("details", "connection" + (failed ? " failed" : ""));
      group.id = id + "-conn-" + connections.indexOf(name);
      group.appendChild(el("summary", null, heading));
      var drawn = false;
      group.draw = function () {
        if (drawn) return;
        drawn = true;
        frames.forEach(function (pair) { group.appendChild(frameItem(pair[0], id + "-f" + pair[1])); });
      };
      group.addEventListener("toggle", function () { if (group.open) group.draw(); });
      if (frames.length && (failed || connections.length <= 3)) { group.draw(); group.open = true; }
      box.appendChild(group);
    });
    if (!connections.length) box.appendChild(el("div", "muted", "No frames."));
    return box;
  }

  function frameItem(f, id) {
    var item = el("details", "frame " + f.direction + (f.schema_violation ? " violation" : "") + (f.failed ? " failed" : ""));
    item.id = id;
    var summary = el("summary");
    summary.appendChild(el("span", "at", "+" + ms(f.at_ms)));
    summary.appendChild(el("span", "dir", f.direction));
    if (f.failed) summary.appendChild(el("span", "flag", "✗ failed an expectation"));
    if (f.step !== undefined && f.step !== null) summary.appendChild(el("span", "muted", "step " + (f.step + 1)));
    summary.appendChild(el("span", "preview", f.data.slice(0, 300)));
    item.appendChild(summary);
    if (f.schema_violation) item.appendChild(el("div", "why", "schema: " + f.schema_violation));
    var filled = false;
    function fill() {
      if (filled) return;
      filled = true;
      item.appendChild(el("pre", null, pretty(f.data)));
      if (f.raw) {
        item.appendChild(el("div", "muted", "raw frame"));
        item.appendChild(el("pre", null, pretty(f.raw)));
      }
    }
    item.addEventListener("toggle", function () { if (item.open) fill(); });
    if (f.failed) { fill(); item.open = true; }
    return item;
  }

  function reveal(id, open, group) {
    if (group) {
      var list = document.getElementById(group);
      if (list && list.draw) { list.draw(); list.open = true; }
    }
    var node = document.getElementById(id);
    if (!node) return;
    if (open && node.tagName === "DETAILS") node.open = true;
    node.scrollIntoView({ block: "center" });
    node.classList.add("flash");
    setTimeout(function () { node.classList.remove("flash"); }, 1200);
  }

  // Marks for whoever measures the page: drawn, then painted (the frame after).
  performance.mark("rendered");
  requestAnimationFrame(function () {
    setTimeout(function () {
      performance.mark("painted");
      document.body.dataset.rendered = "true";
    }, 0);
  });
})();
