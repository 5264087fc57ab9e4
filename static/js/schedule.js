// Schedule form: when the day changes, refresh the list of free employees
// from /api/available_employees/<date>. Without JS the "Show who is free"
// button re-renders the page on the server instead.
(function () {
  "use strict";
  var form = document.getElementById("schedule-form");
  if (!form || !window.fetch) { return; }
  var dateInput = form.querySelector("#date");
  var select = form.querySelector("#employee_id");
  var status = document.getElementById("employees-status");
  var refresh = document.getElementById("refresh-employees");
  if (refresh) { refresh.hidden = true; }

  function option(value, text, selected) {
    var opt = document.createElement("option");
    opt.value = value;
    opt.textContent = text;
    opt.selected = !!selected;
    return opt;
  }

  function keptEmployee(day) {
    // On a reschedule the API counts the schedule's own employee as busy on its own day.
    var id = form.dataset.keepId;
    return id && form.dataset.keepDate === day ? { id: Number(id), name: form.dataset.keepName } : null;
  }

  function fill(employees, day) {
    var current = select.value;
    var kept = keptEmployee(day);
    if (kept && !employees.some(function (e) { return e.id === kept.id; })) { employees = employees.concat([kept]); }
    select.replaceChildren(option("", employees.length ? "Choose an employee" : "Nobody is free that day", false));
    employees.forEach(function (e) { select.appendChild(option(String(e.id), e.name, String(e.id) === current)); });
    if (status) { status.textContent = employees.length + " free on " + day + "."; }
  }

  dateInput.addEventListener("change", function () {
    var day = dateInput.value;
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) { return; }
    if (status) { status.textContent = "Checking who is free on " + day + "…"; }
    fetch(form.dataset.availableUrl + encodeURIComponent(day), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (employees) { fill(employees, day); }).catch(function () {
      if (status) { status.textContent = "Could not refresh the list; use the button below."; }
      if (refresh) { refresh.hidden = false; }
    });
  });
}());
