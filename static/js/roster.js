// The calendar's roster: drag a schedule to another cell (another employee and/or
// day) to move it, keeping its time of day. The move is a POST to the schedule's
// Reschedule route (the same rules and messages as its form), asking for JSON:
// on success the page reloads and shows the result; when the rules refuse, the
// server's message is shown and nothing moves. Without JavaScript, or from the
// keyboard, each schedule's Reschedule link does the same.
(function () {
  "use strict";
  var grid = document.querySelector("[data-roster]");
  var status = document.querySelector("[data-roster-status]");
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (!grid || !status || !meta || !window.fetch || !window.FormData) { return; }
  var token = meta.getAttribute("content");
  var dragged = null;
  var over = null;
  var help = document.querySelector("[data-drag-help]");
  if (help) { help.hidden = false; }

  function say(text, kind) {
    status.textContent = text;
    status.className = "roster-status" + (kind ? " roster-status-" + kind : "");
  }

  function cellOf(node) {
    return node && node.closest ? node.closest("td[data-date]") : null;
  }

  function mark(cell) {
    if (over === cell) { return; }
    if (over) { over.classList.remove("drop-target"); }
    over = cell;
    if (over) { over.classList.add("drop-target"); }
  }

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
    var body = new FormData();
    body.append("csrf_token", token);
    body.append("date", day);
    body.append("time", time);
    body.append("employee_id", cell.getAttribute("data-employee-id"));
    say("Moving “" + name + "” to " + who + " on " + day + " at " + time + "…", "busy");
    fetch(shift.getAttribute("data-reschedule-url"), {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": token }
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    }).then(function (answer) {
      if (answer.ok) { window.location.reload(); return; }
      var error = answer.data && answer.data.error;
      var why = error && error.message ? error.message : "the server answered " + answer.status + ".";
      say("Not moved: “" + name + "” stays where it was. " + why, "error");
    }).catch(function () {
      say("Not moved: the server could not be reached; “" + name + "” stays where it was.", "error");
    });
  }
}());
