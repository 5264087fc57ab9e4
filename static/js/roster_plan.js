// "Plan this week" on the roster (templates/calendar.html's [data-plan]; shown only with
// JavaScript: without it the roster works as before, one schedule at a time).
// 1. "Plan this week" asks the planner for the week shown (POST /api/plan; the page's store
//    filter becomes store_number) and the words for its proposal (POST /calendar/plan/describe):
//    nothing is written. Each proposed assignment shows in its employee/day cell as a dashed
//    card labelled "Proposed" with a drop (×) button; the summary says placed, unplaced by
//    reason, and the proposals for employees not on this page of the roster (listed there,
//    each with its own drop button: they are applied too unless dropped).
// 2. "Apply N" posts the kept assignments to POST /api/plan/apply, keeps its answer in
//    sessionStorage and reloads, so the roster shows the real cards; the summary then says
//    what was created and each refusal with its reason. "Discard" forgets the proposal.
(function () {
  "use strict";
  var bar = document.querySelector("[data-plan]");
  var panel = document.querySelector("[data-plan-panel]");
  if (!bar || !panel || !window.AppFetch || !window.JSON) { return; }
  var grid = document.querySelector("[data-roster]");
  var start = bar.querySelector("[data-plan-start]");
  var status = bar.querySelector("[data-plan-status]");
  var KEY = "roster-plan-applied";
  var SHOWN = 50;  // unplaced events listed per reason (the rest are counted)
  var plan = null;  // the proposal on screen: {items: [...], unplaced: [...], events: {...}}
  bar.hidden = false;

  // -- small helpers -------------------------------------------------------------------
  function node(tag, attrs, children) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { el.textContent = attrs[k]; } else { el.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) { el.appendChild(typeof c === "string" ? document.createTextNode(c) : c); }
    });
    return el;
  }

  function button(label, attrs, run) {
    var b = node("button", Object.assign({ type: "button" }, attrs || {}), typeof label === "string" ? [label] : label);
    b.addEventListener("click", run);
    return b;
  }

  function send(url, body) { return window.AppFetch.request("POST", url, body); }
  var problem = window.AppFetch.why;

  // the status line is the live region; `shown`: the panel already says it on screen
  function say(text, shown) {
    status.textContent = text;
    status.classList.toggle("visually-hidden", !!shown);
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : (many || one + "s")); }

  function dayWords(iso) {  // "Tue 08 Dec"
    var parts = iso.split("-");
    var day = new Date(Date.UTC(+parts[0], +parts[1] - 1, +parts[2]));
    return day.toLocaleDateString("en-GB", { weekday: "short", day: "2-digit", month: "short", timeZone: "UTC" })
      .replace(",", "");
  }

  function eventWords(words, id) {  // "CORE - Snack Reset (#12, store 1204)"
    if (!words) { return "event #" + id; }
    return words.name + " (#" + id + (words.store === null || words.store === undefined ? "" : ", store " + words.store) + ")";
  }

  function cellFor(item) {
    if (!grid || !item.words) { return null; }
    return grid.querySelector('td[data-employee-id="' + item.a.employee_id + '"][data-date="' + item.words.date + '"]');
  }

  // -- the proposal --------------------------------------------------------------------
  start.addEventListener("click", function () {
    if (plan) { discard(true); }
    var body = { from: bar.getAttribute("data-from"), to: bar.getAttribute("data-to") };
    if (bar.hasAttribute("data-store")) { body.store_number = +bar.getAttribute("data-store"); }
    start.disabled = true;
    say("Planning the week…");
    send(bar.getAttribute("data-plan-url"), body).then(function (answer) {
      if (!answer.ok) { throw new Error("No plan: " + problem(answer)); }
      var proposal = answer.data;
      var unplaced = proposal.unplaced.map(function (u) { return u.event_id; });
      return send(bar.getAttribute("data-describe-url"), { assignments: proposal.assignments, unplaced: unplaced })
        .then(function (words) {
          if (!words.ok) { throw new Error("No plan: " + problem(words)); }
          show(proposal, words.data);
        });
    }).catch(function (error) {
      say(error && /^No plan/.test(error.message) ? error.message : "No plan: the server could not be reached.");
    }).then(function () { start.disabled = false; });
  });

  function show(proposal, words) {
    plan = {
      items: proposal.assignments.map(function (a, i) {
        return { a: a, words: words.assignments[i], kept: true, card: null, line: null };
      }),
      unplaced: proposal.unplaced, events: words.events
    };
    plan.items.forEach(function (item) {
      var cell = cellFor(item);
      if (cell) {
        item.card = card(item);
        cell.appendChild(item.card);
        cell.classList.add("has-proposal");
      }
    });
    render();
    say("Proposal: " + plural(plan.items.length, "event") + " placed, " + plan.unplaced.length + " unplaced. Nothing is saved until you apply it.", true);
    var apply = panel.querySelector("[data-plan-apply]");
    (apply || panel.querySelector("[data-plan-discard]")).focus();
  }

  function card(item) {
    var w = item.words;
    var label = w.name + " for " + w.employee + " on " + dayWords(w.date) + " at " + w.time;
    return node("div", { "class": "shift proposal " + w.type_class, "data-proposal": "", "data-event-id": item.a.event_id,
                         title: "Proposed: " + w.name }, [
      node("span", { "class": "proposal-head" }, [
        node("span", { "class": "proposal-tag", text: "Proposed" }),
        node("span", { "class": "visually-hidden", text: ": " }),
        button([node("span", { "aria-hidden": "true", text: "×" }), node("span", { "class": "visually-hidden", text: "Drop " + label })],
               { "class": "proposal-drop", title: "Drop this proposal" }, function () { drop(item); })]),
      node("span", { "class": "shift-top" }, [
        node("span", { "class": "shift-when" }, [
          node("span", { "class": "shift-time", text: w.time }), node("span", { "class": "shift-end", text: "–" + w.end })]),
        " ", node("abbr", { "class": "type-chip " + w.type_class, title: w.type, text: w.type_label })]),
      node("span", { "class": "shift-bottom" }, [
        node("span", { "class": "shift-event", text: w.name }), " ",
        node("span", { "class": "shift-store", text: w.store === null ? "—" : String(w.store) })])
    ]);
  }

  function kept() { return plan ? plan.items.filter(function (i) { return i.kept && i.words; }) : []; }

  function drop(item) {
    var following = nextDrop(item);
    item.kept = false;
    if (item.card) {
      var cell = item.card.parentNode;
      item.card.remove();
      if (cell && !cell.querySelector("[data-proposal]")) { cell.classList.remove("has-proposal"); }
    }
    if (item.line) { item.line.remove(); }
    totals();
    say("Dropped " + item.words.name + " for " + item.words.employee + ". " + plural(kept().length, "proposal") + " left to apply.");
    (following || panel.querySelector("[data-plan-apply]")).focus();
  }

  function nextDrop(item) {  // where the focus goes once this proposal is dropped
    var all = Array.prototype.slice.call(document.querySelectorAll(".proposal-drop"));
    var mine = (item.card || item.line || document.body).querySelector(".proposal-drop");
    var at = all.indexOf(mine);
    return at >= 0 ? (all[at + 1] || all[at - 1] || null) : null;
  }

  // -- the summary -----------------------------------------------------------------------
  function render() {
    panel.textContent = "";
    var store = bar.getAttribute("data-store");
    panel.appendChild(node("h2", { id: "plan-title", tabindex: "-1",
      text: "Proposal for the week of " + bar.getAttribute("data-week-label") + (store ? ", store " + store : "") }));
    panel.appendChild(node("p", { "class": "plan-totals", "data-plan-totals": "" }));
    var outside = plan.items.filter(function (i) { return i.words && !i.card; });
    if (outside.length) {
      var list = node("ul", { "class": "plan-outside" });
      outside.forEach(function (item) {
        var w = item.words;
        item.line = node("li", {}, [w.employee + ", " + dayWords(w.date) + " " + w.time + ": " + w.name + " ",
          button([node("span", { "aria-hidden": "true", text: "×" }),
                  node("span", { "class": "visually-hidden", text: "Drop " + w.name + " for " + w.employee })],
                 { "class": "proposal-drop", title: "Drop this proposal" }, function () { drop(item); })]);
        list.appendChild(item.line);
      });
      panel.appendChild(node("details", { "class": "plan-outside-box" }, [
        node("summary", { "data-plan-outside": "", text: plural(outside.length, "proposal is", "proposals are") +
          " for employees not shown on this page of the roster (another page or outside the filters): they are applied too unless you drop them. Show them" }),
        list]));
    }
    var gone = plan.items.filter(function (i) { return !i.words; }).length;
    if (gone) {
      panel.appendChild(node("p", { "class": "hint", text: plural(gone, "proposal names an event or employee", "proposals name events or employees") +
        " deleted meanwhile: left out." }));
    }
    panel.appendChild(unplacedList());
    panel.appendChild(node("div", { "class": "with-button plan-actions" }, [
      button("Apply", { "data-plan-apply": "" }, apply),
      button("Discard", { "class": "secondary", "data-plan-discard": "" }, function () { discard(false); })]));
    totals();
    panel.hidden = false;
  }

  function totals() {
    var n = kept().length;
    var dropped = plan.items.filter(function (i) { return !i.kept; }).length;
    panel.querySelector("[data-plan-totals]").textContent = "Placed " + plan.items.length + " · unplaced " + plan.unplaced.length +
      (dropped ? " · dropped " + dropped : "") + ". Nothing is saved until you apply it.";
    var apply = panel.querySelector("[data-plan-apply]");
    apply.textContent = "Apply " + n;
    apply.hidden = n === 0;
    var outside = panel.querySelector("[data-plan-outside]");
    if (outside) {
      var left = plan.items.filter(function (i) { return i.kept && i.words && !i.card; }).length;
      outside.textContent = plural(left, "proposal is", "proposals are") + " for employees not shown on this page of the roster " +
        "(another page or outside the filters): they are applied too unless you drop them. Show them";
    }
  }

  function reasonKey(reason) {  // the words without the dates in brackets: one group per kind of reason
    var key = reason.replace(/\s*\([^)]*\)/g, "");
    return key.charAt(0).toUpperCase() + key.slice(1);
  }

  function unplacedList() {
    var box = node("div", { "class": "plan-unplaced" });
    if (!plan.unplaced.length) {
      box.appendChild(node("p", { text: "Every unscheduled event of the week is placed." }));
      return box;
    }
    box.appendChild(node("h3", { "class": "sub", text: "Unplaced, by reason (" + plan.unplaced.length + ")" }));
    var groups = {};
    var order = [];
    plan.unplaced.forEach(function (u) {
      var key = reasonKey(u.reason);
      if (!groups[key]) { groups[key] = []; order.push(key); }
      groups[key].push(u);
    });
    var list = node("ul", { "class": "plan-reasons" });
    order.forEach(function (key) {
      var events = node("ul", {});
      groups[key].slice(0, SHOWN).forEach(function (u) {
        var dates = /\(([^)]*)\)/.exec(u.reason);
        events.appendChild(node("li", { "data-unplaced": u.event_id, text: eventWords(plan.events[String(u.event_id)], u.event_id) +
          (dates ? ": window " + dates[1] : "") }));
      });
      if (groups[key].length > SHOWN) { events.appendChild(node("li", { text: "and " + (groups[key].length - SHOWN) + " more" })); }
      list.appendChild(node("li", {}, [node("strong", { text: key }), " (" + groups[key].length + ")", events]));
    });
    box.appendChild(list);
    return box;
  }

  function discard(quiet) {
    if (!plan) { return; }
    plan.items.forEach(function (item) {
      if (item.card) {
        if (item.card.parentNode) { item.card.parentNode.classList.remove("has-proposal"); }
        item.card.remove();
      }
    });
    plan = null;
    panel.textContent = "";
    panel.hidden = true;
    if (!quiet) {
      say("Proposal discarded: nothing was saved.");
      start.focus();
    }
  }

  // -- apply -------------------------------------------------------------------------
  function apply() {
    var items = kept();
    if (!items.length) { say("Nothing to apply: every proposal was dropped."); return; }
    var buttons = panel.querySelectorAll("button");
    Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
    say("Applying " + plural(items.length, "proposal") + "…");
    send(bar.getAttribute("data-apply-url"), { assignments: items.map(function (i) { return i.a; }) }).then(function (answer) {
      if (!answer.ok) { throw new Error("Not applied: " + problem(answer)); }
      var byEvent = {};
      items.forEach(function (i) { byEvent[i.a.event_id] = i.words; });
      var result = {
        week: bar.getAttribute("data-from"), created: answer.data.created.length,
        refused: answer.data.refused.map(function (r) {
          var w = byEvent[r.event_id];
          return { what: w ? w.name + " for " + w.employee + " on " + dayWords(w.date) + " at " + w.time : "event #" + r.event_id,
                   why: r.error && r.error.message ? r.error.message : "refused" };
        })
      };
      var saved = false;  // for after the reload; without sessionStorage it is shown here, without the reload
      try { window.sessionStorage.setItem(KEY, JSON.stringify(result)); saved = true; } catch (e) { saved = false; }
      if (saved) { window.location.reload(); return; }
      discard(true);
      applied(result);
    }).catch(function (error) {
      Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; });
      say(error && /^Not applied/.test(error.message) ? error.message + " Nothing was saved."
        : "Not applied: the server could not be reached. Reload the page to see what was saved.");
    });
  }

  function applied(result) {  // after the reload: what Apply created and what it refused, and why
    panel.textContent = "";
    panel.appendChild(node("h2", { id: "plan-title", tabindex: "-1", text: "Plan applied" }));
    var words = "Created " + plural(result.created, "schedule") + "; " +
      (result.refused.length ? plural(result.refused.length, "proposal was", "proposals were") + " refused." : "none refused.");
    panel.appendChild(node("p", { "class": "plan-totals", "data-plan-result": "", text: words }));
    if (result.refused.length) {
      var list = node("ul", { "class": "plan-refused" });
      result.refused.forEach(function (r) {
        list.appendChild(node("li", {}, [node("strong", { text: r.what }), ": " + r.why]));
      });
      panel.appendChild(node("h3", { "class": "sub", text: "Refused, and why" }));
      panel.appendChild(list);
    }
    panel.appendChild(node("div", { "class": "with-button plan-actions" }, [
      button("Close", { "class": "secondary", "data-plan-close": "" }, function () {
        panel.textContent = ""; panel.hidden = true; say(""); start.focus();
      })]));
    panel.hidden = false;
    say(words + (result.refused.length ? " The reasons are listed below the Plan button." : ""), true);
    panel.querySelector("h2").focus();
  }

  var saved = null;
  try { saved = window.sessionStorage.getItem(KEY); window.sessionStorage.removeItem(KEY); } catch (e) { saved = null; }
  if (saved) {
    try { saved = JSON.parse(saved); } catch (e) { saved = null; }
    if (saved && saved.week === bar.getAttribute("data-from")) { applied(saved); }
  }
}());
