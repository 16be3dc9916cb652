// olric-raft live cluster page: polls this member's HTTP API every second
// and renders members, leader, routing version, the partition grid and
// request rates. No framework, no external resources.
"use strict";

(function () {
  var POLL_MS = 1000;
  var TIMEOUT_MS = 2000;
  // Paths are relative to /ui/ so that the page also works behind a proxy
  // that mounts the API under a prefix.
  var API = "../";

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  // fetchText GETs path with a timeout; it rejects on a network error, a
  // timeout or a non-2xx status.
  // The API token (a member started with --auth-tokens), typed into the
  // header's field and kept in sessionStorage: for this tab only, gone when
  // it closes. Sent as a Bearer header; none when empty.
  var TOKEN_KEY = "olric-raft-token";

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  function setToken(v) {
    try {
      if (v) { sessionStorage.setItem(TOKEN_KEY, v); } else { sessionStorage.removeItem(TOKEN_KEY); }
    } catch (e) { /* storage disabled: the token lasts until reload */ }
  }

  function fetchText(path) {
    var ctrl = new AbortController();
    var timer = setTimeout(function () { ctrl.abort(); }, TIMEOUT_MS);
    var headers = { "Accept": "application/json, text/plain" };
    var token = tokenInput ? tokenInput.value.trim() : getToken();
    if (token) { headers["Authorization"] = "Bearer " + token; }
    return fetch(API + path, { signal: ctrl.signal, cache: "no-store", headers: headers })
      .then(function (resp) {
        return resp.text().then(function (body) {
          if (!resp.ok) {
            var msg = resp.status + " " + resp.statusText;
            try { msg += ": " + JSON.parse(body).error.message; } catch (e) { /* not JSON */ }
            throw new Error(path + ": " + msg);
          }
          return body;
        });
      }, function (err) {
        throw new Error(path + ": " + (err && err.name === "AbortError" ? "timed out" : err));
      })
      .finally(function () { clearTimeout(timer); });
  }

  function fetchJSON(path) {
    return fetchText(path).then(function (t) { return JSON.parse(t); });
  }

  // ---- colors: a stable color per member id ----

  function hash(s) { // FNV-1a, 32 bits
    var h = 0x811c9dc5;
    for (var i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h >>> 0;
  }

  function memberColor(id) {
    var h = hash(id);
    var hue = Math.floor(((h * 0.6180339887) % 1) * 360);
    var light = 45 + ((h >>> 9) % 3) * 10; // 45, 55, 65
    return "hsl(" + hue + ", 65%, " + light + "%)";
  }

  // ---- Prometheus text format ----

  // parseProm returns the samples of families whose name starts with prefix:
  // [{name, labels: {k: v}, value}].
  function parseProm(text, prefix) {
    var out = [];
    var lines = text.split("\n");
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      if (line === "" || line.charAt(0) === "#" || line.lastIndexOf(prefix, 0) !== 0) { continue; }
      var s = parseSample(line);
      if (s) { out.push(s); }
    }
    return out;
  }

  function parseSample(line) {
    var i = 0, n = line.length;
    while (i < n && line.charAt(i) !== "{" && line.charAt(i) !== " ") { i++; }
    var name = line.slice(0, i);
    var labels = {};
    if (line.charAt(i) === "{") {
      i++;
      for (;;) {
        while (line.charAt(i) === " " || line.charAt(i) === ",") { i++; }
        if (i >= n) { return null; }
        if (line.charAt(i) === "}") { i++; break; }
        var eq = line.indexOf("=", i);
        if (eq < 0 || line.charAt(eq + 1) !== "\"") { return null; }
        var key = line.slice(i, eq).trim();
        i = eq + 2;
        var val = "";
        while (i < n && line.charAt(i) !== "\"") {
          var c = line.charAt(i);
          if (c === "\\" && i + 1 < n) {
            var d = line.charAt(i + 1);
            val += d === "n" ? "\n" : d;
            i += 2;
          } else {
            val += c;
            i++;
          }
        }
        if (i >= n) { return null; }
        i++; // closing quote
        labels[key] = val;
      }
    }
    var rest = line.slice(i).trim().split(/\s+/);
    var v = parseFloat(rest[0]);
    if (rest[0] === "+Inf") { v = Infinity; } else if (rest[0] === "-Inf") { v = -Infinity; }
    if (isNaN(v) && rest[0] !== "NaN") { return null; }
    return { name: name, labels: labels, value: v };
  }

  function isDataRoute(route) { return / \/v1\/dmaps\//.test(route || ""); }

  // snapshot sums the HTTP request counters and latency histograms, for the
  // data routes and for every route.
  function snapshot(text) {
    var samples = parseProm(text, "olric_raft_http_request");
    function agg() { return { count: 0, hcount: 0, sum: 0, buckets: {} }; }
    var snap = { data: agg(), all: agg() };
    samples.forEach(function (s) {
      var groups = isDataRoute(s.labels.route) ? [snap.data, snap.all] : [snap.all];
      groups.forEach(function (g) {
        switch (s.name) {
          case "olric_raft_http_requests_total": g.count += s.value; break;
          case "olric_raft_http_request_duration_seconds_sum": g.sum += s.value; break;
          case "olric_raft_http_request_duration_seconds_count": g.hcount += s.value; break;
          case "olric_raft_http_request_duration_seconds_bucket":
            var le = s.labels.le === "+Inf" ? Infinity : parseFloat(s.labels.le);
            g.buckets[le] = (g.buckets[le] || 0) + s.value;
            break;
        }
      });
    });
    return snap;
  }

  // quantile estimates the q-quantile from cumulative bucket deltas, as
  // PromQL's histogram_quantile does (linear within a bucket).
  function quantile(q, buckets) {
    var bounds = Object.keys(buckets).map(Number).sort(function (a, b) { return a - b; });
    if (bounds.length === 0) { return NaN; }
    var total = buckets[bounds[bounds.length - 1]];
    if (!(total > 0)) { return NaN; }
    var rank = q * total, prevBound = 0, prevCount = 0;
    for (var i = 0; i < bounds.length; i++) {
      var b = bounds[i], c = buckets[b];
      if (c >= rank) {
        if (b === Infinity) { return prevBound; }
        if (c === prevCount) { return b; }
        return prevBound + (b - prevBound) * (rank - prevCount) / (c - prevCount);
      }
      prevBound = b;
      prevCount = c;
    }
    return prevBound;
  }

  function fmtMs(sec) {
    if (!isFinite(sec)) { return "—"; }
    var ms = sec * 1000;
    return (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)) + " ms";
  }

  function fmtRate(r) { return isFinite(r) ? r.toFixed(r < 10 ? 1 : 0) : "—"; }

  var prev = null; // {t, snap}

  function renderMetrics(text) {
    var now = performance.now();
    var snap = snapshot(text);
    var p = prev;
    prev = { t: now, snap: snap };
    if (!p || now <= p.t) { return; }
    var dt = (now - p.t) / 1000;
    function delta(cur, old) {
      var d = { count: cur.count - old.count, hcount: cur.hcount - old.hcount, sum: cur.sum - old.sum, buckets: {} };
      Object.keys(cur.buckets).forEach(function (k) { d.buckets[k] = cur.buckets[k] - (old.buckets[k] || 0); });
      return d;
    }
    var d = delta(snap.data, p.snap.data), a = delta(snap.all, p.snap.all);
    if (d.count < 0 || a.count < 0) { return; } // the member restarted: wait for the next poll
    $("data-ops").textContent = fmtRate(d.count / dt);
    $("all-ops").textContent = fmtRate(a.count / dt);
    $("data-latency").textContent = d.hcount > 0
      ? fmtMs(d.sum / d.hcount) + " / " + fmtMs(quantile(0.5, d.buckets)) + " / " + fmtMs(quantile(0.99, d.buckets))
      : "— (no data requests)";
    $("all-latency").textContent = a.hcount > 0
      ? fmtMs(a.sum / a.hcount) + " / " + fmtMs(quantile(0.99, a.buckets))
      : "—";
  }

  // ---- members, leader, partitions ----

  function renderSummary(status, routing, members) {
    $("self").textContent = status.node_id + " (" + status.state + ", " + String(status.raft_state).toLowerCase() + ")";
    $("metrics-self").textContent = status.node_id;
    var leader = status.leader && status.leader.id;
    if (!leader) {
      members.members.forEach(function (m) { if (m.leader) { leader = m.id; } });
    }
    $("leader").textContent = leader || "none known";
    $("term").textContent = status.term;
    $("version").textContent = routing.routing_version;
    $("updated").textContent = new Date().toLocaleTimeString();
  }

  function renderMembers(members, routing) {
    var httpAddr = {};
    routing.members.forEach(function (m) { httpAddr[m.id] = m.http_addr; });
    var body = $("members-body");
    var rows = document.createDocumentFragment();
    var list = members.members.slice().sort(function (x, y) { return x.id < y.id ? -1 : x.id > y.id ? 1 : 0; });
    list.forEach(function (m) {
      var tr = el("tr", { "data-member": m.id, "data-state": m.state, "class": "member state-" + m.state });
      var idCell = el("td");
      idCell.appendChild(el("span", { "class": "swatch" })).style.backgroundColor = memberColor(m.id);
      idCell.appendChild(document.createTextNode(m.id));
      tr.appendChild(idCell);
      tr.appendChild(el("td", { "class": "state" }, m.state));
      tr.appendChild(el("td", null, m.gossip || ""));
      tr.appendChild(el("td", null, m.voter ? "voter" : (m.raft_suffrage || "no")));
      tr.appendChild(el("td", { "class": "leader-mark" }, m.leader ? "★ leader" : ""));
      tr.appendChild(el("td", { "class": "mono" }, m.incarnation));
      tr.appendChild(el("td", { "class": "num" }, m.primaries));
      tr.appendChild(el("td", { "class": "num" }, m.backups));
      var addrCell = el("td", { "class": "mono" });
      var addr = httpAddr[m.id] || m.http_addr;
      if (addr && m.state !== "failed") {
        addrCell.appendChild(el("a", { href: "http://" + addr + "/ui/" }, addr));
      } else {
        addrCell.textContent = addr || "";
      }
      tr.appendChild(addrCell);
      rows.appendChild(tr);
    });
    body.replaceChildren(rows);
  }

  function legendItem(cls, text, color) {
    var item = el("span", { "class": "legend-item" });
    var sw = el("span", { "class": "cell sample " + cls });
    if (color) { sw.style.backgroundColor = color; }
    item.appendChild(sw);
    item.appendChild(document.createTextNode(text));
    return item;
  }

  function renderLegend(routing) {
    var frag = document.createDocumentFragment();
    routing.members.slice().sort(function (x, y) { return x.id < y.id ? -1 : 1; }).forEach(function (m) {
      frag.appendChild(legendItem("", m.id + (m.state !== "alive" ? " (" + m.state + ")" : ""), memberColor(m.id)));
    });
    frag.appendChild(legendItem("unavailable", "unavailable (no primary)"));
    frag.appendChild(legendItem("handoff", "handoff (primary moving)", "#999"));
    frag.appendChild(legendItem("syncing", "backup syncing", "#999"));
    $("legend").replaceChildren(frag);
  }

  function renderGrid(routing) {
    var grid = $("grid");
    var parts = routing.partitions;
    if (grid.children.length !== parts.length) {
      var frag = document.createDocumentFragment();
      for (var i = 0; i < parts.length; i++) { frag.appendChild(el("div", { "class": "cell" })); }
      grid.replaceChildren(frag);
    }
    var counts = { active: 0, handoff: 0, unavailable: 0, syncing: 0 };
    parts.forEach(function (p, i) {
      var c = grid.children[i];
      var syncing = p.syncing && p.syncing.length > 0;
      var cls = "cell state-" + p.state + (syncing ? " syncing" : "");
      counts[p.state] = (counts[p.state] || 0) + 1;
      if (syncing) { counts.syncing++; }
      if (c.className !== cls) { c.className = cls; }
      c.setAttribute("data-partition", p.id);
      c.setAttribute("data-primary", p.primary || "");
      c.style.backgroundColor = p.state === "unavailable" || !p.primary ? "" : memberColor(p.primary);
      var title = "partition " + p.id + "\nstate: " + p.state + "\nprimary: " + (p.primary || "none") +
        "\nbackups: " + (p.backups.length ? p.backups.join(", ") : "none");
      if (p.handoff_to) { title += "\nhandoff to: " + p.handoff_to; }
      if (syncing) { title += "\nsyncing: " + p.syncing.join(", "); }
      title += "\nleader epoch: " + p.leader_epoch;
      if (c.title !== title) { c.title = title; }
      if (c.textContent !== String(p.id)) { c.textContent = p.id; }
    });
    $("grid-count").textContent = "(" + parts.length + ")";
    $("partition-summary").textContent = parts.length + " total, " + counts.active + " active, " +
      counts.handoff + " handoff, " + counts.unavailable + " unavailable, " + counts.syncing + " with syncing backups";
  }

  function setConn(ok, err) {
    var c = $("conn");
    c.className = "conn " + (ok ? "connected" : "disconnected");
    c.setAttribute("data-conn", ok ? "connected" : "disconnected");
    c.textContent = ok ? "connected" : "disconnected" + (err ? ": " + err.message : "");
    document.body.classList.toggle("stale", !ok);
  }

  function poll() {
    var metrics = fetchText("metrics").then(function (t) { return t; }, function () { return null; });
    Promise.all([fetchJSON("v1/status"), fetchJSON("v1/cluster/members"), fetchJSON("v1/cluster/routing"), metrics])
      .then(function (r) {
        var status = r[0], members = r[1], routing = r[2], metricsText = r[3];
        renderSummary(status, routing, members);
        renderMembers(members, routing);
        renderLegend(routing);
        renderGrid(routing);
        if (metricsText !== null) {
          renderMetrics(metricsText);
        } else {
          prev = null;
          $("data-ops").textContent = "— (GET /metrics failed or is not served)";
        }
        setConn(true);
      }, function (err) {
        setConn(false, err);
      })
      .finally(function () { setTimeout(poll, POLL_MS); });
  }

  var tokenInput = $("token");
  if (tokenInput) {
    tokenInput.value = getToken();
    tokenInput.addEventListener("change", function () { setToken(tokenInput.value.trim()); });
  }

  poll();
})();
