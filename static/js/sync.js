/* Sync UI, progressive: the server renders everything first and every button is
 * a working form; this script adds live refresh (status every 15 s, paused
 * while the tab is hidden), in-page run progress and in-page retry/resolve.
 * Talks to /api/sync/* through static/js/app_fetch.js (session cookie, X-CSRFToken).
 */
(function () {
  "use strict";
  if (!window.AppFetch) { return; }  // static/js/app_fetch.js: no fetch, the forms still work

  var STATUS_EVERY_MS = 15000;
  var RUN_POLL_MS = 1000;
  var RESOURCES = ["employees", "events", "schedules"];
  var HEALTH_LABELS = { ok: "OK", degraded: "Degraded", down: "Down", disabled: "Sync off" };

  var section = document.querySelector("[data-sync-section]");
  var live = document.querySelector("[data-sync-live]");
  var timeZone = (section && section.getAttribute("data-timezone")) || "UTC";
  var runInProgress = false;

  function api(method, url, body) {  // data is {} when the answer is not JSON
    return window.AppFetch.request(method, url, body).then(function (result) {
      if (result.data === null) { result.data = {}; }
      return result;
    });
  }

  function errorText(result) {  // a sentence of its own: "The server answered 502."
    var text = window.AppFetch.why(result);
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function announce(text, kind, extra) {
    if (!live) { return; }
    live.className = live.className.replace(/\bsync-live-(ok|error|busy)\b/g, "").trim() +
      " sync-live-" + (kind || "ok");
    live.textContent = text;
    if (extra) { live.appendChild(document.createTextNode(" ")); live.appendChild(extra); }
  }

  function reloadLink(text) {
    var link = document.createElement("a");
    link.href = window.location.pathname + window.location.search;
    link.textContent = text || "Reload the lists";
    return link;
  }

  function localTime(iso) {
    if (!iso) { return ""; }
    var parts = {};
    new Intl.DateTimeFormat("en-CA", {
      timeZone: timeZone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23"
    }).formatToParts(new Date(iso)).forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
  }

  function timeElement(iso) {
    var el = document.createElement("time");
    el.setAttribute("datetime", iso);
    el.textContent = localTime(iso);
    return el;
  }

  function moved(run) {
    return "pushed " + (run.pushed || 0) + ", pulled " + (run.pulled || 0) +
      ", failed " + (run.failed || 0) + ", conflicts " + (run.conflicts || 0);
  }

  /* -- status and health refresh ------------------------------------------ */

  function setCounts(counts) {
    Object.keys(counts || {}).forEach(function (resource) {
      Object.keys(counts[resource]).forEach(function (status) {
        var cell = document.querySelector('[data-count="' + resource + "." + status + '"]');
        if (!cell) { return; }
        var value = counts[resource][status];
        cell.textContent = value;
        if (status !== "synced") { cell.classList.toggle("has-" + status, value > 0); }
      });
    });
  }

  function setLastRun(run) {
    document.querySelectorAll("[data-last-run]").forEach(function (el) {
      var isParagraph = el.tagName === "P";
      el.textContent = isParagraph ? "Last run: " : "";
      if (!run) { el.appendChild(document.createTextNode("No sync has run yet.")); return; }
      el.appendChild(document.createTextNode("Run #" + run.id + " (" + run.trigger + ") started "));
      el.appendChild(timeElement(run.started_at));
      var status = document.createElement("span");
      status.className = "run-status run-" + run.status;
      status.textContent = run.status;
      el.appendChild(document.createTextNode(": "));
      el.appendChild(status);
      if (run.status !== "running") { el.appendChild(document.createTextNode(" — " + moved(run))); }
    });
  }

  function setNextRun(data) {
    document.querySelectorAll("[data-next-run]").forEach(function (el) {
      el.textContent = "Next run: ";
      if (!data.enabled) { el.appendChild(document.createTextNode("none, sync is off")); }
      else if (data.next_run_at) { el.appendChild(timeElement(data.next_run_at)); }
      else { el.appendChild(document.createTextNode("not scheduled")); }
    });
  }

  function refreshStatus() {
    if (!section) { return Promise.resolve(); }
    return api("GET", section.getAttribute("data-status-url")).then(function (result) {
      if (!result.ok) { return; }
      setCounts(result.data.counts);
      setLastRun(result.data.last_run);
      setNextRun(result.data);
    }).catch(function () { /* keep what the server rendered */ });
  }

  function refreshHealth() {
    if (!section) { return Promise.resolve(); }
    return api("GET", section.getAttribute("data-health-url")).then(function (result) {
      var data = result.data || {};
      var status = data.status;
      if (!status) { return; }
      document.querySelectorAll("[data-health-badge]").forEach(function (badge) {
        badge.className = "sync-health sync-health-" + status;
        badge.querySelector("[data-health-label]").textContent = HEALTH_LABELS[status] || status;
      });
      document.querySelectorAll("[data-health-note]").forEach(function (note) {
        note.textContent = "(checked " + localTime(new Date().toISOString()) + ")";
      });
      var api_ = data.api || {};
      document.querySelectorAll("[data-health-latency]").forEach(function (el) {
        el.textContent = api_.latency_ms != null ? Math.round(api_.latency_ms) + " ms" : "—";
      });
      document.querySelectorAll("[data-health-error]").forEach(function (el) {
        el.textContent = api_.error || "—";
      });
      var scheduler = data.scheduler;
      if (scheduler) {
        document.querySelectorAll("[data-scheduler]").forEach(function (el) {
          el.textContent = scheduler.running ? "running" : "not running in this process";
          if (scheduler.running && scheduler.next_run_at) {
            el.appendChild(document.createTextNode(", next run "));
            el.appendChild(timeElement(scheduler.next_run_at));
          }
        });
      }
    }).catch(function () { /* keep what the server rendered */ });
  }

  function startPolling() {
    if (!section) { return; }
    refreshHealth();
    window.setInterval(function () {
      if (!document.hidden && !runInProgress) { refreshStatus(); }
    }, STATUS_EVERY_MS);
    window.setInterval(function () {
      if (!document.hidden) { refreshHealth(); }
    }, STATUS_EVERY_MS * 4);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { refreshStatus(); }
    });
  }

  /* -- runs: start and follow -------------------------------------------- */

  function setRunButtons(disabled) {
    document.querySelectorAll("form[data-sync-run] button").forEach(function (button) {
      button.disabled = disabled;
    });
  }

  // Re-render the page's own lists (marked data-sync-refresh, each with an id) from
  // the server after a run, so the rows' sync badges show the new state.
  function refreshLists() {
    var regions = document.querySelectorAll("[data-sync-refresh][id]");
    if (!regions.length || !window.DOMParser) { return Promise.resolve(false); }
    return fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin", headers: { "Accept": "text/html" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.text();
    }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, "text/html");
      regions.forEach(function (region) {
        var replacement = fresh.getElementById(region.id);
        if (replacement) { region.replaceWith(document.importNode(replacement, true)); }
      });
      return true;
    }).catch(function () { return false; });
  }

  function runFinished(run) {
    runInProgress = false;
    setRunButtons(false);
    var text = "Run #" + run.id + " " + run.status + ": " + moved(run) + ".";
    if (run.errors && run.errors.length) {
      text += " First error: " + run.errors[0].message;
    }
    var kind = run.status === "succeeded" ? "ok" : "error";
    var onAdmin = window.location.pathname.indexOf("/sync/admin") === 0;
    refreshStatus();
    refreshHealth();
    refreshLists().then(function (refreshed) {
      announce(text, kind, refreshed ? null : reloadLink(onAdmin ? "Reload the lists" : "Reload the page"));
    });
  }

  function followRun(runId) {
    runInProgress = true;
    setRunButtons(true);
    function poll() {
      api("GET", "/api/sync/runs/" + runId).then(function (result) {
        if (!result.ok) {
          runInProgress = false;
          setRunButtons(false);
          announce("Could not follow run #" + runId + ": " + errorText(result), "error");
          return;
        }
        var run = result.data.run || result.data;
        if (run.status === "running") {
          announce("Run #" + run.id + " running… " + moved(run), "busy");
          window.setTimeout(poll, RUN_POLL_MS);
        } else {
          runFinished(run);
        }
      }).catch(function () { window.setTimeout(poll, RUN_POLL_MS * 3); });
    }
    poll();
  }

  function runBody(form) {
    var data = new FormData(form);
    var resource = data.get("resource") || "all";
    return {
      resources: resource === "all" ? RESOURCES.slice() : [resource],
      direction: data.get("direction") || "both",
      full: data.get("full") === "1",
      wait: false
    };
  }

  function onRunSubmit(event) {
    var form = event.target;
    event.preventDefault();
    if (runInProgress) { return; }
    announce("Starting a sync run…", "busy");
    setRunButtons(true);
    api("POST", "/api/sync/trigger", runBody(form)).then(function (result) {
      var run = result.data && result.data.run;
      if (result.ok && run) {
        if (run.status === "running") { followRun(run.id); } else { runFinished(run); }
        return;
      }
      setRunButtons(false);
      var error = (result.data && result.data.error) || {};
      var running = error.run || (error.details && error.details.run);
      if (error.code === "sync_in_progress" && running && running.id) {
        announce("A run is already in progress; following run #" + running.id + ".", "busy");
        followRun(running.id);
        return;
      }
      announce("No run started: " + errorText(result), "error");
    }).catch(function () {
      setRunButtons(false);
      form.submit();  /* the no-JS path still works */
    });
  }

  /* -- retry and resolve ------------------------------------------------- */

  function rowName(container) {
    var heading = container && container.querySelector("th[scope=row], h3");
    return heading ? heading.textContent.trim() : "The record";
  }

  function markDone(container, text) {
    if (!container) { return; }
    container.classList.add("done");
    var actions = container.querySelector("[data-row-actions]");
    if (actions) {
      actions.textContent = "";
      var note = document.createElement("span");
      note.className = "done-note";
      note.textContent = text;
      actions.appendChild(note);
    }
  }

  function onPostSubmit(event) {
    var form = event.target;
    event.preventDefault();
    var body = JSON.parse(form.getAttribute("data-body") || "{}");
    var done = form.getAttribute("data-done");
    var container = form.closest("[data-record]");
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    api("POST", form.getAttribute("data-api"), body).then(function (result) {
      buttons.forEach(function (b) { b.disabled = false; });
      if (result.status === 404 && !container) { form.submit(); return; }
      if (!result.ok) { announce(errorText(result), "error"); return; }
      if (done === "retry-one") {
        markDone(container, "Queued for retry");
        announce(rowName(container) + " will be sent again.", "ok");
      } else if (done === "retry-all") {
        document.querySelectorAll("#failed [data-record]").forEach(function (row) {
          markDone(row, "Queued for retry");
        });
        var n = result.data.count != null ? result.data.count : result.data.retried;
        announce((n != null ? n + " failed record(s)" : "Every failed record") +
          " will be sent again.", "ok");
      } else if (done === "held") {
        markDone(container, result.data.message);
        announce(result.data.message, "ok");
      } else if (done === "resolve") {
        var kept = body.keep === "local" ? "local" : "vendor";
        markDone(container, "Resolved: kept the " + kept + " version");
        announce(rowName(container) + ": kept the " + kept + " version.", "ok");
      }
      refreshStatus();
    }).catch(function () {
      buttons.forEach(function (b) { b.disabled = false; });
      form.submit();
    });
  }

  // Delegated, so forms inside lists re-rendered by refreshLists() keep working.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches) { return; }
    if (form.matches("form[data-sync-run]")) { onRunSubmit(event); }
    else if (form.matches("form[data-sync-post]")) { onPostSubmit(event); }
  });
  startPolling();
  if (section && section.getAttribute("data-running-run")) {
    followRun(section.getAttribute("data-running-run"));
  }
})();
