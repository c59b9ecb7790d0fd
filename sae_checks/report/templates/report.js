(function () {
  "use strict";
  // The checks table: a text filter, one checkbox per status, "show all" / "blocking only" buttons.
  // Starts from the address (#show=all, #status=fail,warn, #filter=text, or the same as ?query),
  // else shows the blocking checks only. A link to #check-<id> reveals that row.
  var section = document.getElementById("checks-section");
  var blocking = section ? (section.getAttribute("data-blocking") || "").split(",") : [];
  var box = document.getElementById("check-filter");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#checks tbody tr"));
  var toggles = Array.prototype.slice.call(document.querySelectorAll("input.status-filter"));
  var count = document.getElementById("check-count");

  function apply() {
    var query = box ? box.value.trim().toLowerCase() : "";
    var on = {};
    toggles.forEach(function (t) { on[t.value] = t.checked; });
    var shown = 0;
    rows.forEach(function (row) {
      var ok = on[row.getAttribute("data-status")] !== false &&
               (query === "" || row.textContent.toLowerCase().indexOf(query) !== -1);
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    if (count) {
      count.textContent = shown + " of " + rows.length + " checks shown" +
        (shown === 0 && rows.length ? " (none blocking or none match: show all)" : "");
      count.setAttribute("data-shown", String(shown));
    }
  }
  function setStatuses(list) {
    toggles.forEach(function (t) { t.checked = list === null || list.indexOf(t.value) !== -1; });
  }
  function addressState() {
    var state = {};
    [location.search, location.hash].forEach(function (part) {
      part.replace(/^[?#]/, "").split("&").forEach(function (pair) {
        var i = pair.indexOf("=");
        if (i > 0) {
          try {
            state[decodeURIComponent(pair.slice(0, i))] = decodeURIComponent(pair.slice(i + 1).replace(/\+/g, " "));
          } catch (e) { /* a malformed escape: ignore that pair */ }
        }
      });
    });
    return state;
  }
  function reveal(anchor) {
    var row = document.getElementById(anchor);
    if (!row || rows.indexOf(row) === -1 || !row.hidden) { return; }
    toggles.forEach(function (t) { if (t.value === row.getAttribute("data-status")) { t.checked = true; } });
    if (box) { box.value = ""; }
    apply();
    row.scrollIntoView();
  }
  function fromAddress() {
    var state = addressState();
    if (state.show === "all") { setStatuses(null); }
    else if (state.status !== undefined) { setStatuses(state.status.split(",")); }
    else if (state.filter !== undefined) { setStatuses(null); }
    else { setStatuses(blocking); }
    if (box) { box.value = state.filter || ""; }
    apply();
    if (location.hash.indexOf("#check-") === 0) { reveal(location.hash.slice(1)); }
  }

  if (box) { box.addEventListener("input", apply); }
  toggles.forEach(function (t) { t.addEventListener("change", apply); });
  var all = document.getElementById("show-all");
  if (all) { all.addEventListener("click", function () { setStatuses(null); if (box) { box.value = ""; } apply(); }); }
  var only = document.getElementById("show-blocking");
  if (only) { only.addEventListener("click", function () { setStatuses(blocking); if (box) { box.value = ""; } apply(); }); }
  Array.prototype.slice.call(document.querySelectorAll('a[href^="#check-"]')).forEach(function (a) {
    a.addEventListener("click", function () { reveal(a.getAttribute("href").slice(1)); });
  });
  window.addEventListener("hashchange", function () {
    if (location.hash.indexOf("#check-") === 0) { reveal(location.hash.slice(1)); } else { fromAddress(); }
  });
  fromAddress();

  // A figure whose image does not decode says so under it; <body data-figures="loaded/broken/total">.
  var imgs = Array.prototype.slice.call(document.querySelectorAll("figure img"));
  var loaded = 0, failed = 0;
  function tally() { document.body.setAttribute("data-figures", loaded + "/" + failed + "/" + imgs.length); }
  imgs.forEach(function (img) {
    function ok() { loaded += 1; tally(); }
    function broken() { failed += 1; img.parentNode.classList.add("broken"); tally(); }
    if (img.complete) { if (img.naturalWidth > 0) { ok(); } else { broken(); } }
    else { img.addEventListener("load", ok); img.addEventListener("error", broken); }
  });
  tally();
  document.body.setAttribute("data-js", "ready");
})();
