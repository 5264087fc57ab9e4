// The one way the pages' scripts call the app (base.html loads it before any page script):
// a same-origin request with the session cookie and the CSRF token (Flask-WTF reads the
// X-CSRFToken header), answered as {ok, status, data} whatever the body holds (data is
// null when the answer is not JSON), and the words that say why an answer was refused.
(function () {
  "use strict";
  if (!window.fetch) { return; }  // no window.AppFetch: the pages' plain forms still work
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.getAttribute("content") : "";

  // body: a plain object (sent as JSON), a FormData (sent as a form, with csrf_token), or none
  function request(method, url, body) {
    var options = { method: method, credentials: "same-origin",
                    headers: { "Accept": "application/json", "X-CSRFToken": token } };
    if (body instanceof FormData) {
      body.append("csrf_token", token);
      options.body = body;
    } else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    });
  }

  // a form POST of {name: value} fields, as the page's own forms send them
  function postForm(url, fields) {
    var body = new FormData();
    Object.keys(fields || {}).forEach(function (k) { body.append(k, fields[k]); });
    return request("POST", url, body);
  }

  // the app's error message, else the status: "the server answered 502."
  function why(answer) {
    var error = answer.data && answer.data.error;
    return error && error.message ? error.message : "the server answered " + answer.status + ".";
  }

  window.AppFetch = { token: token, request: request, postForm: postForm, why: why };
})();
