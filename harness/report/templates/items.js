// The report's item explorer: one row per question, one column per variant, drawn from the
// JSON in <script id="items-data"> (harness/report/items.py). Rows are drawn a page at a
// time; filters live in the URL fragment (#items/disagree, #items/right=A/wrong=B, ...), so a
// link opens the same view. No library, no network.
(function () {
  "use strict";
  var holder = document.getElementById("items-data");
  var root = document.getElementById("items-root");
  if (!holder || !root) return;
  var D = JSON.parse(holder.textContent);
  var PAGE = 100;
  var LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  var MODES = { "": "all items", "disagree": "variants disagree", "all-wrong": "all wrong",
                "all-right": "all right", "changed": "changed between the sweeps" };
  var SORTS = { "": "task order", "right": "fewest right first", "-right": "most right first" };
  var views = {};
  D.views.forEach(function (v) {
    views[v.key] = v;
    v.index = {};
    v.columns.forEach(function (c, i) { v.index[c.name] = i; });
    v.items.forEach(function (it) {
      it.nRight = 0;
      it.v.forEach(function (c) { if (c && c.ok) it.nRight += 1; });
      var text = [it.id, it.q].concat(it.gold || []);
      it.v.forEach(function (c) { if (c) c.s.forEach(function (s) { text.push(answerText(it, s)); if (s.o != null) text.push(String(s.o)); }); });
      it.haystack = text.join("\n").toLowerCase();
    });
  });
  var state = null;

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function short(s, n) { s = String(s == null ? "" : s).replace(/\s+/g, " ").trim(); return s.length > n ? s.slice(0, n - 1) + "…" : s; }
  function answerText(it, s) {
    if (s.c != null && it.ch) return LETTERS.charAt(s.c) + ". " + it.ch[s.c];
    return s.o == null ? "" : String(s.o);
  }
  function fmt(x, d) { return typeof x === "number" ? x.toFixed(d == null ? 3 : d) : String(x); }

  // ---- the fragment: #items/<mode>/right=A/wrong=B/doc=d/seen=yes/q=text/sort=right/page=2/open=id
  function blank() { return { split: "test", mode: "", right: [], wrong: [], doc: "", seen: "", q: "", sort: "", page: 1, open: "", meta: {} }; }
  function parse(hash) {
    var s = blank();
    var h = (hash || "").replace(/^#/, "");
    if (h !== "items" && h.indexOf("items/") !== 0) return null;
    h.split("/").slice(1).forEach(function (part) {
      if (!part) return;
      var eq = part.indexOf("=");
      var key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
      var val = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
      if (eq < 0 && key in MODES) s.mode = key;
      else if (key === "right" || key === "wrong") s[key].push(val);
      else if (key === "page") s.page = Math.max(1, parseInt(val, 10) || 1);
      else if (key.indexOf("meta.") === 0) s.meta[key.slice(5)] = val;
      else if (key in s && key !== "meta") s[key] = val;
    });
    if (!views[s.split]) s.split = "test";
    return s;
  }
  function serialize(s) {
    var enc = encodeURIComponent, parts = ["items"];
    if (s.split !== "test") parts.push("split=" + enc(s.split));
    if (s.mode) parts.push(s.mode);
    s.right.forEach(function (v) { parts.push("right=" + enc(v)); });
    s.wrong.forEach(function (v) { parts.push("wrong=" + enc(v)); });
    ["doc", "seen", "q", "sort"].forEach(function (k) { if (s[k]) parts.push(k + "=" + enc(s[k])); });
    Object.keys(s.meta).forEach(function (k) { if (s.meta[k] !== "") parts.push("meta." + enc(k) + "=" + enc(s.meta[k])); });
    if (s.page > 1) parts.push("page=" + s.page);
    if (s.open) parts.push("open=" + enc(s.open));
    return "#" + parts.join("/");
  }

  // ---- filtering
  function problems(s, V) {
    var out = [];
    s.right.concat(s.wrong).forEach(function (n) { if (!(n in V.index)) out.push("no variant named '" + n + "' on the " + V.title); });
    if (s.mode === "changed" && !(D.compare || []).length) out.push("'changed' needs a comparison of two sweeps");
    return out;
  }
  function matches(s, V, it, q) {
    var cells = it.v, answered = 0, right = 0, i;
    for (i = 0; i < cells.length; i++) if (cells[i]) { answered += 1; if (cells[i].ok) right += 1; }
    if (s.mode === "disagree" && !(right > 0 && right < answered)) return false;
    if (s.mode === "all-wrong" && !(answered > 0 && right === 0)) return false;
    if (s.mode === "all-right" && !(answered > 0 && right === answered)) return false;
    if (s.mode === "changed") {
      var any = (D.compare || []).some(function (p) {
        var a = cells[V.index[p[0]]], b = cells[V.index[p[1]]];
        return a && b && a.ok !== b.ok;
      });
      if (!any) return false;
    }
    for (i = 0; i < s.right.length; i++) { var r = cells[V.index[s.right[i]]]; if (!r || !r.ok) return false; }
    for (i = 0; i < s.wrong.length; i++) { var w = cells[V.index[s.wrong[i]]]; if (!w || w.ok) return false; }
    if (s.doc && (it.src || []).indexOf(s.doc) < 0) return false;
    if (s.seen === "yes" && it.seen !== true) return false;
    if (s.seen === "no" && it.seen !== false) return false;
    for (var k in s.meta) if (s.meta[k] !== "" && String((it.meta || {})[k]) !== s.meta[k]) return false;
    if (q && it.haystack.indexOf(q) < 0) return false;
    return true;
  }
  function selected(s, V) {
    if (problems(s, V).length) return [];
    var q = s.q.toLowerCase();
    var out = V.items.filter(function (it) { return matches(s, V, it, q); });
    if (s.sort === "right") out = out.slice().sort(function (a, b) { return a.nRight - b.nRight; });
    if (s.sort === "-right") out = out.slice().sort(function (a, b) { return b.nRight - a.nRight; });
    return out;
  }

  // ---- drawing
  function select(name, options, value, label) {
    var sel = el("select", { "data-control": name, "aria-label": label });
    options.forEach(function (o) {
      var opt = el("option", { value: o[0], text: o[1] });
      if (o[0] === value) opt.selected = true;
      sel.appendChild(opt);
    });
    sel.addEventListener("change", function () { update(name, sel.value); });
    return el("label", null, [label + " ", sel]);
  }
  function update(name, value) {
    var s = JSON.parse(JSON.stringify(state));
    if (name === "right" || name === "wrong") s[name] = value ? [value] : [];
    else if (name.indexOf("meta.") === 0) s.meta[name.slice(5)] = value;
    else s[name] = value;
    if (name !== "page" && name !== "open") s.page = 1;
    if (name === "split") { s = blank(); s.split = value; }
    go(s);
  }
  function go(s) {
    state = s;
    var hash = serialize(s);
    if (location.hash !== hash) history.replaceState(null, "", hash);
    draw();
  }
  function controls(V) {
    var box = el("div", { cls: "items-controls" });
    if (D.views.length > 1) box.appendChild(select("split", D.views.map(function (v) { return [v.key, v.title]; }), state.split, "Items of the"));
    var modes = Object.keys(MODES).filter(function (m) { return m !== "changed" || (D.compare || []).length; });
    box.appendChild(select("mode", modes.map(function (m) { return [m, MODES[m]]; }), state.mode, "Show"));
    var names = [["", "any"]].concat(V.columns.map(function (c) { return [c.name, c.name]; }));
    box.appendChild(select("right", names, state.right[0] || "", "right:"));
    box.appendChild(select("wrong", names, state.wrong[0] || "", "wrong:"));
    var docs = {};
    V.items.forEach(function (it) { (it.src || []).forEach(function (d) { docs[d] = (docs[d] || 0) + 1; }); });
    var dl = Object.keys(docs).sort();
    if (dl.length) box.appendChild(select("doc", [["", "any"]].concat(dl.map(function (d) { return [d, d + " (" + docs[d] + ")"]; })), state.doc, "source document"));
    if (V.items.some(function (it) { return it.seen != null; }))
      box.appendChild(select("seen", [["", "any"], ["yes", "seen: asked about in train split"], ["no", "unseen: not asked about"]], state.seen, "its document"));
    metaKeys(V).forEach(function (k) {
      box.appendChild(select("meta." + k.key, [["", "any"]].concat(k.values.map(function (x) { return [x, x]; })), state.meta[k.key] || "", k.key));
    });
    var search = el("input", { type: "search", placeholder: "search questions and answers", "data-control": "q", value: state.q });
    var timer = null;
    search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(function () { update("q", search.value); }, 200); });
    box.appendChild(search);
    box.appendChild(select("sort", Object.keys(SORTS).map(function (k) { return [k, SORTS[k]]; }), state.sort, "sort"));
    return box;
  }
  function metaKeys(V) {
    var seen = {};
    V.items.forEach(function (it) { Object.keys(it.meta || {}).forEach(function (k) { (seen[k] = seen[k] || {})[String(it.meta[k])] = 1; }); });
    return Object.keys(seen).sort().map(function (k) { return { key: k, values: Object.keys(seen[k]).sort() }; })
      .filter(function (k) { return k.values.length <= 30; });
  }
  function cellView(it, c) {
    if (!c) return el("td", { cls: "na", text: "not answered" });
    var mark = c.ok ? "✓" : "✗";
    var groups = grouped(it, c);
    var text = short(groups[0].text, 60) || "(no answer)";
    var td = el("td", { cls: c.ok ? "ok" : "bad" }, [el("span", { cls: "mark", text: mark + " " }), text]);
    if (c.n > 1) td.appendChild(el("div", { cls: "seeds", text: c.r + " of " + c.n + " seeds right" }));
    return td;
  }
  function grouped(it, c) {
    var by = {}, order = [];
    c.s.forEach(function (s) {
      var t = answerText(it, s);
      if (!(t in by)) { by[t] = []; order.push(t); }
      by[t].push(s.seed);
    });
    return order.map(function (t) { return { text: t, seeds: by[t] }; }).sort(function (a, b) { return b.seeds.length - a.seeds.length; });
  }
  function detail(V, it) {
    var box = el("div", { cls: "item-detail-box" });
    var facts = [["id", it.id], ["split", it.split || V.key], ["gold", (it.gold || []).join(" | ")],
                 ["source documents", (it.src || []).join(", ") || "none given"]];
    if (it.seen != null) facts.push(["source document asked about in training", it.seen ? "yes" : "no"]);
    Object.keys(it.meta || {}).forEach(function (k) { facts.push([k, typeof it.meta[k] === "object" ? JSON.stringify(it.meta[k]) : String(it.meta[k])]); });
    box.appendChild(el("dl", { cls: "item-facts" }, [].concat.apply([], facts.map(function (f) { return [el("dt", { text: f[0] }), el("dd", { text: f[1] })]; }))));
    box.appendChild(el("p", { cls: "item-question", text: it.q }));
    V.columns.forEach(function (col, i) {
      var c = it.v[i];
      var part = el("section", { cls: "item-variant", "data-variant": col.name });
      part.appendChild(el("h4", { text: col.name + (c ? (c.ok ? " — right" : " — wrong") : " — did not answer") }));
      if (!c) { box.appendChild(part); return; }
      if (c.n > 1) part.appendChild(el("p", { cls: "seeds", text: c.r + " of " + c.n + " seeds right" }));
      grouped(it, c).forEach(function (g) {
        part.appendChild(el("pre", { cls: "output" }, [(c.n > 1 ? "seed " + g.seeds.join(", ") + " (" + g.seeds.length + "×): " : "") + (g.text || "(no answer)")]));
      });
      c.s.forEach(function (s) {
        var head = c.n > 1 ? "seed " + s.seed + ": " : "";
        if (s.o != null && s.c != null) part.appendChild(el("pre", { cls: "output" }, [head + "generated: " + s.o]));
        if (s.lp && it.ch) part.appendChild(logprobs(it, s, head));
        if (s.sc) part.appendChild(scores(s.sc, head));
        if (s.p) part.appendChild(passages(it, s, head));
      });
      if (!col.cites) part.appendChild(el("p", { cls: "note", text: "This strategy does not retrieve: it cannot cite sources." }));
      box.appendChild(part);
    });
    return box;
  }
  function logprobs(it, s, head) {
    var t = el("table", { cls: "lp", "data-logprobs": "" }, [el("caption", { text: head + "choice log-probabilities" })]);
    it.ch.forEach(function (ch, j) {
      var flags = (j === it.gc ? " gold" : "") + (j === s.c ? " chosen" : "");
      t.appendChild(el("tr", { cls: flags.trim() }, [el("td", { text: LETTERS.charAt(j) + ". " + ch }), el("td", { text: fmt(s.lp[j], 3) }),
        el("td", { text: (j === it.gc ? "gold" : "") + (j === s.c ? (j === it.gc ? ", chosen" : "chosen") : "") })]));
    });
    return t;
  }
  function scores(sc, head) {
    var t = el("table", { cls: "sc" }, [el("caption", { text: head + "scores" })]);
    Object.keys(sc).forEach(function (k) { t.appendChild(el("tr", null, [el("td", { text: k }), el("td", { text: fmt(sc[k], 3) })])); });
    return t;
  }
  function passages(it, s, head) {
    var ol = el("ol", { cls: "passages", "data-passages": "" });
    s.p.forEach(function (ref) {
      var p = D.passages[ref[0]], gold = (it.src || []).indexOf(p[0]) >= 0;
      var li = el("li", { cls: gold ? "gold" : "", "data-doc": p[0], "data-gold": gold ? "true" : "false" },
        [el("strong", { text: p[0] }), " " + (ref[1] == null ? "" : "score " + fmt(ref[1], 3)) + (gold ? " — gold source" : "")]);
      li.appendChild(el("div", { cls: "passage" }, [p[1] ? short(p[1], 1200) : "(the whole document)"]));
      ol.appendChild(li);
    });
    return el("div", null, [el("p", { cls: "note", text: head + "retrieved and cited, in rank order (the passages that reached the prompt, by document):" }), ol]);
  }
  function draw() {
    var V = views[state.split];
    root.textContent = "";
    root.appendChild(controls(V));
    var wrongs = problems(state, V);
    wrongs.forEach(function (w) { root.appendChild(el("p", { cls: "items-problem", text: "This link asks for " + w + "; choose one of: " + V.columns.map(function (c) { return c.name; }).join(", ") })); });
    var rows = selected(state, V);
    var pages = Math.max(1, Math.ceil(rows.length / PAGE));
    if (state.page > pages) state.page = pages;
    var from = (state.page - 1) * PAGE, shown = rows.slice(from, from + PAGE);
    var total = el("span", { "data-items-total": String(rows.length), text: String(rows.length) });
    var info = el("p", { cls: "items-count" }, [total, " of " + V.items.length + " items" + (rows.length ? " (showing " + (from + 1) + "–" + (from + shown.length) + ")" : "")]);
    if (pages > 1) {
      var prev = el("button", { type: "button", text: "‹ previous" }), next = el("button", { type: "button", text: "next ›" });
      prev.disabled = state.page <= 1; next.disabled = state.page >= pages;
      prev.addEventListener("click", function () { update("page", state.page - 1); });
      next.addEventListener("click", function () { update("page", state.page + 1); });
      info.appendChild(document.createTextNode(" page " + state.page + " of " + pages + " "));
      info.appendChild(prev); info.appendChild(next);
    }
    root.appendChild(info);
    var head = el("tr", null, [el("th", { text: "question" }), el("th", { text: "gold" })]
      .concat(V.columns.map(function (c) { return el("th", { text: c.name }); })).concat([el("th", { text: "right" })]));
    var body = el("tbody");
    shown.forEach(function (it) {
      var tr = el("tr", { "data-item": it.id, cls: "item-row", tabindex: "0" },
        [el("td", { title: it.q }, [short(it.q, 90)]), el("td", { text: short((it.gold || [])[0], 40) })]
          .concat(it.v.map(function (c) { return cellView(it, c); })).concat([el("td", { text: it.nRight + "/" + it.v.filter(Boolean).length })]));
      tr.addEventListener("click", function () { update("open", state.open === it.id ? "" : it.id); });
      tr.addEventListener("keydown", function (e) { if (e.key === "Enter") update("open", state.open === it.id ? "" : it.id); });
      body.appendChild(tr);
      if (state.open === it.id) {
        tr.classList.add("open");
        body.appendChild(el("tr", { cls: "item-detail", "data-detail": it.id }, [el("td", { colspan: String(V.columns.length + 3) }, [detail(V, it)])]));
      }
    });
    root.appendChild(el("div", { cls: "scroll" }, [el("table", { cls: "items", "data-items": V.key }, [el("thead", null, [head]), body])]));
    root.setAttribute("data-ready", "true");
  }
  function fromHash(scroll) {
    var s = parse(location.hash);
    state = s || state || blank();
    draw();
    if (s && scroll) { var sec = document.getElementById("items"); if (sec) sec.scrollIntoView(); }
  }
  window.addEventListener("hashchange", function () { fromHash(true); });
  fromHash(true);
})();
