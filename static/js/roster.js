// The calendar's roster, made quicker with JavaScript (every action also works without it:
// each card's menu has Reschedule, Unschedule and History as plain links and forms).
// - Drag a card to another cell (another employee and/or day) to move it, keeping its time
//   of day: a POST to the card's Reschedule route asking for JSON. Moved: the page reloads.
//   Refused: the card stays where it was and the reason shows next to the cell (a live
//   region, so screen readers say it too).
// - From the keyboard: focus a card and press M (or its menu's "Move with keys…"), choose
//   a cell with the arrow keys, Enter moves, Escape cancels.
// - Unschedule asks the server for JSON and offers an Undo for a few seconds (the schedule
//   POST re-creates the same schedule: event, employee, day and time).
// - While some cards are not synced, their sync marks follow the server (a small GET every
//   few seconds) without a reload.
(function () {
  "use strict";
  var grid = document.querySelector("[data-roster]");
  var status = document.querySelector("[data-roster-status]");
  if (!grid || !status || !window.AppFetch || !window.FormData) { return; }
  var wrap = grid.closest(".roster-wrap");
  var dragged = null;
  var over = null;
  var moving = null;   // the card being moved from the keyboard
  var target = null;   // the cell it would go to
  var sayTimer = null;
  var saidAt = 0;
  var help = document.querySelector("[data-drag-help]");
  if (help) { help.hidden = false; }
  // each card's menu gets "Move with keys…" (it needs this script, so the server leaves it out)
  grid.querySelectorAll(".shift-menu").forEach(function (menu) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.setAttribute("data-move", "");
    button.textContent = "Move with keys…";
    var hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = " " + menu.parentNode.getAttribute("data-name");
    button.appendChild(hidden);
    var first = menu.querySelector("a");
    menu.insertBefore(button, first ? first.nextSibling : null);
  });

  // -- messages next to the cell ---------------------------------------------------
  function say(text, kind, near, action) {
    window.clearTimeout(sayTimer);
    saidAt = Date.now();
    status.textContent = text;
    status.className = "roster-status" + (kind ? " roster-status-" + kind : "");
    if (action) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = action.label;
      button.addEventListener("click", action.run);
      status.appendChild(button);
      if (action.focus) { button.focus(); }
    }
    if (near) {  // fixed, by the cell: never clipped by the grid's scrolling box
      var box = near.getBoundingClientRect();
      var width = Math.min(status.offsetWidth || 300, window.innerWidth - 8);
      status.style.left = Math.max(4, Math.min(box.left, window.innerWidth - width - 4)) + "px";
      status.style.top = Math.min(box.bottom + 2, window.innerHeight - (status.offsetHeight || 60) - 4) + "px";
    }
    if (action && action.seconds) {
      sayTimer = window.setTimeout(function () { say(""); }, action.seconds * 1000);
    }
  }

  function cellOf(node) {
    return node && node.closest ? node.closest("td[data-date]") : null;
  }

  function mark(cell, name) {
    name = name || "drop-target";
    if (over === cell) { return; }
    if (over) { over.classList.remove("drop-target", "move-target"); }
    over = cell;
    if (over) { over.classList.add(name); }
  }

  var post = window.AppFetch.postForm, why = window.AppFetch.why;

  // -- drag and drop ---------------------------------------------------------------
  grid.addEventListener("dragstart", function (e) {
    var shift = e.target.closest ? e.target.closest(".shift") : null;
    if (!shift) { return; }
    dragged = shift;
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", shift.getAttribute("data-schedule-id"));
    shift.classList.add("dragging");
  });

  grid.addEventListener("dragend", function () {
    if (dragged) { dragged.classList.remove("dragging"); }
    dragged = null;
    mark(null);
  });

  grid.addEventListener("dragover", function (e) {
    var cell = cellOf(e.target);
    if (!dragged || !cell) { return; }
    e.preventDefault();
    e.dataTransfer.dropEffect = "move";
    mark(cell);
  });

  grid.addEventListener("drop", function (e) {
    var cell = cellOf(e.target);
    var shift = dragged;
    if (!shift || !cell) { return; }
    e.preventDefault();
    mark(null);
    if (cellOf(shift) === cell) { return; }
    move(shift, cell);
  });

  function move(shift, cell) {
    var name = shift.getAttribute("data-name");
    var who = cell.getAttribute("data-employee-name");
    var day = cell.getAttribute("data-date");
    var time = shift.getAttribute("data-time");
    say("Moving “" + name + "” to " + who + " on " + day + " at " + time + "…", "busy", cell);
    post(shift.getAttribute("data-reschedule-url"), {
      date: day, time: time, employee_id: cell.getAttribute("data-employee-id")
    }).then(function (answer) {
      if (answer.ok) { window.location.reload(); return; }
      say("Not moved: “" + name + "” stays where it was. " + why(answer), "error", cell);
      focusCard(shift);
    }).catch(function () {
      say("Not moved: the server could not be reached; “" + name + "” stays where it was.", "error", cell);
    });
  }

  function focusCard(shift) {
    var summary = shift.querySelector("summary");
    if (summary) { summary.focus(); }
  }

  // -- moving with the keyboard ------------------------------------------------------
  function cellsGrid() {
    return Array.prototype.map.call(grid.tBodies[0].rows, function (row) {
      return Array.prototype.filter.call(row.cells, function (c) { return c.hasAttribute("data-date"); });
    });
  }

  function startMove(shift) {
    shift.open = false;
    moving = shift;
    shift.classList.add("moving");
    choose(cellOf(shift));
  }

  function choose(cell) {
    target = cell;
    mark(cell, "move-target");
    cell.setAttribute("tabindex", "-1");
    cell.focus();
    say("Moving “" + moving.getAttribute("data-name") + "”: " + cell.getAttribute("data-employee-name") + ", " +
        cell.getAttribute("data-date") + ". Arrow keys choose a cell, Enter moves it there, Escape cancels.", "busy", cell);
  }

  function endMove(keepMessage) {
    var shift = moving;
    if (shift) { shift.classList.remove("moving"); }
    if (target) { target.removeAttribute("tabindex"); }
    moving = null;
    target = null;
    mark(null);
    if (!keepMessage) { say(""); }
    return shift;
  }

  document.addEventListener("keydown", function (e) {
    if (!moving) {
      var summary = e.target.closest ? e.target.closest(".shift > summary") : null;
      if (summary && (e.key === "m" || e.key === "M") && !e.ctrlKey && !e.metaKey && !e.altKey) {
        e.preventDefault();
        startMove(summary.parentNode);
      }
      return;
    }
    var rows = cellsGrid();
    var r = -1;
    var c = -1;
    rows.forEach(function (row, i) { var j = row.indexOf(target); if (j >= 0) { r = i; c = j; } });
    var step = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[e.key];
    if (step) {
      e.preventDefault();
      var nr = Math.min(rows.length - 1, Math.max(0, r + step[0]));
      var nc = Math.min(rows[nr].length - 1, Math.max(0, c + step[1]));
      if (rows[nr][nc] !== target) { target.removeAttribute("tabindex"); choose(rows[nr][nc]); }
    } else if (e.key === "Escape") {
      e.preventDefault();
      var back = endMove();
      say("Move cancelled.", "", cellOf(back));
      focusCard(back);
    } else if (e.key === "Enter") {
      e.preventDefault();
      var cell = target;
      var shift = endMove(true);
      if (cellOf(shift) === cell) { say("Not moved: that is where it is.", "", cell); focusCard(shift); return; }
      move(shift, cell);
    } else if (e.key === "Tab") {
      endMove();
    }
  });

  // Focus never hides behind the sticky employee column, header row or totals row
  // (WCAG 2.4.11): the CSS scroll-padding does most of it; this makes sure.
  if (wrap) {
    wrap.addEventListener("focusin", function (e) {
      var el = e.target;
      if (el === wrap || (el.closest && el.closest("th"))) { return; }
      var box = el.getBoundingClientRect();
      var column = grid.querySelector("tbody th.roster-employee");
      var head = grid.tHead;
      var foot = grid.tFoot;
      var gap = 6;
      if (column && box.left < column.getBoundingClientRect().right + gap) {
        wrap.scrollLeft -= column.getBoundingClientRect().right + gap - box.left;
      }
      if (head && box.top < head.getBoundingClientRect().bottom + gap) {
        wrap.scrollTop -= head.getBoundingClientRect().bottom + gap - box.top;
      } else if (foot && box.bottom > foot.getBoundingClientRect().top - gap) {
        wrap.scrollTop += box.bottom - foot.getBoundingClientRect().top + gap;
      }
    });
  }

  if (wrap) {  // the message belongs to a cell: scrolling the grid away from it clears it
    wrap.addEventListener("scroll", function () { if (!moving && Date.now() - saidAt > 1000 && !status.querySelector("button")) { say(""); } });
  }

  grid.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("[data-move]") : null;
    if (button) { startMove(button.closest(".shift")); }
  });

  // Escape closes an open card menu; opening one closes the others.
  grid.addEventListener("toggle", function (e) {
    if (e.target.open) {
      grid.querySelectorAll("details.shift[open]").forEach(function (d) { if (d !== e.target) { d.open = false; } });
    }
  }, true);
  grid.addEventListener("keydown", function (e) {
    var open = e.target.closest ? e.target.closest("details.shift[open]") : null;
    if (open && e.key === "Escape" && !moving) { open.open = false; focusCard(open); }
  });

  // -- unschedule, with an Undo ----------------------------------------------------------
  grid.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.hasAttribute("data-unschedule")) { return; }
    e.preventDefault();
    var shift = form.closest(".shift");
    var cell = cellOf(shift);
    var name = shift.getAttribute("data-name");
    post(form.action, {}).then(function (answer) {
      if (!answer.ok) { say("Not unscheduled: " + why(answer), "error", cell); return; }
      var gone = answer.data;
      shift.remove();
      say("Unscheduled “" + name + "”.", "", cell, {
        label: "Undo", focus: true, seconds: 10,
        run: function () { undo(gone, cell); }
      });
    }).catch(function () {
      say("Not unscheduled: the server could not be reached.", "error", cell);
    });
  });

  function undo(gone, cell) {
    say("Putting “" + gone.name + "” back…", "busy", cell);
    post(gone.schedule_url, { date: gone.date, time: gone.time, employee_id: gone.employee_id, back: "calendar" })
      .then(function (answer) {
        if (answer.ok) { window.location.reload(); return; }
        say("Could not put “" + gone.name + "” back: someone took that day or the event meanwhile. " +
            "Schedule it again from the dashboard.", "error", cell);
      }).catch(function () {
        say("Could not put “" + gone.name + "” back: the server could not be reached.", "error", cell);
      });
  }

  // -- sync marks follow the server -------------------------------------------------
  var statesUrl = grid.getAttribute("data-states-url");
  var WORDS = { pending: "…", failed: "!", conflict: "⇄", synced: "✓" };
  function unsynced() {
    return Array.prototype.filter.call(grid.querySelectorAll(".shift[data-state]"), function (s) {
      return s.getAttribute("data-state") === "pending";
    });
  }
  function poll() {
    var cards = unsynced();
    if (!cards.length || !statesUrl) { return; }
    var ids = cards.map(function (s) { return s.getAttribute("data-schedule-id"); }).slice(0, 400);
    fetch(statesUrl + "?ids=" + ids.join(","), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (states) {
        cards.forEach(function (card) {
          var state = states[card.getAttribute("data-schedule-id")];
          if (!state || state === "deleted" || state === card.getAttribute("data-state")) { return; }
          card.setAttribute("data-state", state);
          var icon = card.querySelector("[data-sync-icon]");
          if (icon) {
            icon.className = "sync-icon s-" + state;
            icon.title = state;
            icon.children[0].textContent = WORDS[state] || "?";
            icon.children[1].textContent = state === "synced" ? ", synced" : ", sync " + state;
          }
        });
      })
      .catch(function () { /* try again next time */ })
      .then(function () { if (unsynced().length) { window.setTimeout(poll, 4000); } });
  }
  window.setTimeout(poll, 3000);
}());
