// berth panel: sends forms and buttons to the JSON API with the session's
// CSRF token, shows the API's field errors beside the fields, follows
// deployment logs and container logs. No inline script anywhere (the
// pages' CSP forbids it).
"use strict";
(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  // "a.b[0].c" -> ["a", "b", 0, "c"]
  function path(name) {
    const out = [];
    for (const part of name.split(".")) {
      const m = part.match(/^([^\[]+)((?:\[\d+\])*)$/);
      if (!m) { out.push(part); continue; }
      out.push(m[1]);
      for (const i of m[2].matchAll(/\[(\d+)\]/g)) out.push(Number(i[1]));
    }
    return out;
  }

  function put(obj, keys, value) {
    let at = obj;
    keys.forEach((k, i) => {
      if (i === keys.length - 1) { at[k] = value; return; }
      if (at[k] === undefined) at[k] = typeof keys[i + 1] === "number" ? [] : {};
      at = at[k];
    });
  }

  // A form's fields as the API's JSON: dotted names nest, empty fields are
  // left out, data-type says how to read a value; a part marked
  // data-rule="<field>" that is left empty (or whose data-key field is)
  // is sent as null, which turns that rule off.
  function serialize(form) {
    const body = {};
    if (form.dataset.body) Object.assign(body, JSON.parse(form.dataset.body));
    for (const el of form.elements) {
      if (!el.name || el.matches(":disabled") || el.type === "submit" || el.type === "button") continue;
      const type = el.dataset.type || "";
      let value;
      if (type === "multi") {
        if (!el.checked) continue;
        const keys = path(el.name);
        let list = keys.reduce((o, k) => (o ? o[k] : undefined), body);
        if (!Array.isArray(list)) { list = []; put(body, keys, list); }
        list.push(el.value);
        continue;
      } else if (el.type === "checkbox") {
        value = el.checked;
      } else if (el.type === "radio") {
        if (!el.checked || el.dataset.toggle !== undefined) continue;
        value = el.value;
      } else {
        value = el.value.trim();
        // A cleared optional setting is sent as null, which clears it.
        if (value === "" && type === "nullable") { put(body, path(el.name), null); continue; }
        if (value === "" && el.dataset.keep === undefined) continue;
        if (el.dataset.requires) {
          const other = form.elements.namedItem(el.dataset.requires);
          if (!other || other.value.trim() === "") continue;
        }
        if (type === "int") value = Number(value);
        if (type === "list") value = value.split(",").map(s => s.trim()).filter(Boolean);
        if (type === "pairs") value = pairs(value);
        if (type === "lines") value = value.split("\n").map(s => s.trim()).filter(Boolean);
        if (type === "headers") value = pairs(value, ":");
        if (type === "json") value = JSON.parse(value);
      }
      if (form.dataset.shape === "env") {
        if (el.name === "value") continue;
        const v = form.elements.namedItem("value");
        put(body, ["env", value], v ? v.value : "");
        continue;
      }
      put(body, path(el.name), value);
    }
    return offRules(form, compact(body));
  }

  function offRules(form, body) {
    form.querySelectorAll("[data-rule]").forEach(part => {
      if (part.matches(":disabled")) return;
      const keys = path(part.dataset.rule);
      const v = keys.reduce((o, k) => (o == null ? undefined : o[k]), body);
      const key = part.dataset.key;
      const empty = x => x === undefined || (Array.isArray(x) && x.length === 0);
      if (v === undefined || (key && empty(v[key]))) put(body, keys, null);
    });
    return body;
  }

  // "A=1\nB=two" -> {A: "1", B: "two"}; a line without "=" names an empty
  // value. Header lines ("Name: value") split at ":".
  function pairs(text, sep = "=") {
    const out = {};
    for (const line of text.split("\n")) {
      const l = line.trim();
      if (!l) continue;
      const i = l.indexOf(sep);
      const v = l.slice(i + 1);
      if (i < 0) out[l] = ""; else out[l.slice(0, i).trim()] = sep === ":" ? v.trim() : v;
    }
    return out;
  }

  // Rows left empty (a grant set to none) leave holes in arrays: drop them.
  function compact(v) {
    if (Array.isArray(v)) return v.filter(() => true).map(compact);
    if (v && typeof v === "object") {
      for (const k of Object.keys(v)) v[k] = compact(v[k]);
    }
    return v;
  }

  function clearErrors(scope) {
    scope.querySelectorAll(".field-error").forEach(e => e.remove());
    scope.querySelectorAll("[aria-invalid]").forEach(e => {
      e.removeAttribute("aria-invalid");
      e.removeAttribute("aria-describedby");
    });
    scope.querySelectorAll(".form-error").forEach(e => { e.hidden = true; e.textContent = ""; });
    flash("");
  }

  function flash(text) {
    const f = document.getElementById("flash");
    if (!f) return;
    f.textContent = text;
    f.hidden = !text;
  }

  // Beside the field the API names (or the nearest enclosing name), else
  // in the form's error line, else at the top of the page.
  function showError(scope, error) {
    const message = error.message || "the request failed";
    let field = error.field || "";
    while (field && scope) {
      const input = scope.querySelector(`[name="${CSS.escape(field)}"]`) ||
        scope.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
      if (input) {
        const p = document.createElement("p");
        p.className = "field-error";
        p.id = "err-" + Math.random().toString(36).slice(2);
        p.textContent = message;
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", p.id);
        input.insertAdjacentElement("afterend", p);
        // A field in a closed <details> is shown before it takes the focus.
        const closed = input.closest("details:not([open])");
        if (closed) closed.open = true;
        input.focus();
        return;
      }
      const shorter = field.replace(/(\.[^.\[]+|\[\d+\])$/, "");
      field = shorter === field ? "" : shorter;
    }
    const line = scope && scope.querySelector(".form-error");
    if (line) { line.textContent = message; line.hidden = false; return; }
    flash(message);
  }

  async function call(method, url, body) {
    const headers = { "Accept": "application/json", "X-CSRF-Token": csrf() };
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined && method !== "GET") {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(url, init);
    let data = null;
    const text = await res.text();
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    return { ok: res.ok, status: res.status, data };
  }

  function fill(target, data) {
    target.querySelectorAll("[data-field]").forEach(el => {
      const v = data[el.dataset.field];
      el.textContent = Array.isArray(v) ? v.join("\n") : (v == null ? "" : String(v));
    });
    target.querySelectorAll("img[data-svg]").forEach(img => {
      const svg = data[img.dataset.svg] || "";
      img.src = "data:image/svg+xml;base64," + btoa(unescape(encodeURIComponent(svg)));
    });
    target.hidden = false;
    target.focus();
  }

  function then(how, data, source) {
    if (source && source.dataset.hide) {
      document.querySelectorAll(source.dataset.hide).forEach(el => { el.hidden = true; });
    }
    if (!how || how === "reload") { location.reload(); return; }
    if (how === "signin") {
      if (data && data.pending_second_factor) {
        document.querySelector('meta[name="csrf-token"]').content = data.csrf_token;
        document.getElementById("sign-in").hidden = true;
        document.getElementById("second-factor").hidden = false;
        document.getElementById("code").focus();
      } else {
        location.assign("/");
      }
      return;
    }
    if (how.startsWith("go:")) {
      const url = how.slice(3).replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent((data && data[k]) || ""));
      location.assign(url);
      return;
    }
    if (how.startsWith("logs:")) {
      const target = document.querySelector(how.slice(5));
      if (!target) return;
      const containers = (data && data.containers) || [];
      target.textContent = containers.length
        ? containers.map(c => `== ${c.container}\n` + c.lines.map(l => l.text).join("\n")).join("\n\n")
        : "no containers are running";
      target.hidden = false;
      target.focus();
      return;
    }
    if (how.startsWith("fill:")) {
      const target = document.querySelector(how.slice(5));
      if (target) fill(target, data || {});
      if (source && source.tagName === "FORM") source.reset();
    }
  }

  async function act(source, method, url, body) {
    const scope = source.tagName === "FORM" ? source : source.closest("form, section, li, tr") || document.body;
    clearErrors(scope);
    const busy = source.tagName === "FORM" ? source.querySelector("[type=submit]") : source;
    if (busy) { busy.disabled = true; busy.setAttribute("aria-busy", "true"); }
    try {
      const res = await call(method, url, body);
      if (res.ok) { then(source.dataset.then, res.data, source); return; }
      const error = (res.data && res.data.error) || { message: `the server answered ${res.status}` };
      showError(source.tagName === "FORM" ? source : null, error);
    } catch (e) {
      flash("berth could not be reached: " + e.message);
    } finally {
      if (busy) { busy.disabled = false; busy.removeAttribute("aria-busy"); }
    }
  }

  document.addEventListener("submit", ev => {
    const form = ev.target.closest("form[data-api]");
    if (!form) return;
    ev.preventDefault();
    if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
    act(form, form.dataset.method || "POST", form.dataset.api, serialize(form));
  });

  document.addEventListener("click", ev => {
    // A row's remove button empties the row (a user of basic auth): the
    // form then sends the list without it.
    const clear = ev.target.closest("button[data-clear]");
    if (clear) {
      const row = clear.closest("[data-row]");
      if (row) {
        row.querySelectorAll("input").forEach(i => { i.value = ""; });
        row.hidden = true;
      }
      return;
    }
    const button = ev.target.closest("button[data-api]");
    if (!button) return;
    ev.preventDefault();
    if (button.dataset.live && window.EventSource) { followContainers(button); return; }
    if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    act(button, button.dataset.method || "POST", button.dataset.api, body);
  });

  // Radio buttons with data-toggle enable the fieldset of their value.
  function toggles() {
    document.querySelectorAll("input[data-toggle]:checked").forEach(radio => {
      document.querySelectorAll(`fieldset[data-when]`).forEach(fs => {
        if (fs.dataset.group !== radio.name) return;
        const on = fs.dataset.when === radio.value;
        fs.disabled = !on;
        fs.hidden = !on;
      });
    });
  }
  document.addEventListener("change", ev => { if (ev.target.matches("input[data-toggle]")) toggles(); });

  // Live deployment logs (Server-Sent Events, same origin, the cookie goes along).
  function follow() {
    document.querySelectorAll("pre[data-follow]").forEach(pre => {
      const state = document.getElementById(pre.dataset.state || "");
      const es = new EventSource(pre.dataset.follow);
      if (state) state.textContent = "following the log…";
      es.onmessage = e => {
        pre.textContent += e.data + "\n";
        pre.scrollTop = pre.scrollHeight;
      };
      es.onerror = () => {
        es.close();
        if (state) state.textContent = "the log has ended";
        // A deployment followed live has ended: show the app's new state.
        if (pre.dataset.live !== undefined) setTimeout(() => location.reload(), 800);
      };
    });
  }

  // Live container logs: the replicas' lines as they write them, tagged
  // [replica container], stderr marked "!". The button stops it again.
  // When the stream cannot start (too many open, an old browser), the
  // button's data-api shows the last lines once instead.
  const MAX_LOG_LINES = 5000;
  function followContainers(button) {
    const pre = document.querySelector(button.dataset.target);
    const state = document.getElementById(button.dataset.state || "");
    const say = text => { if (state) state.textContent = text; };
    const label = button.dataset.label || (button.dataset.label = button.textContent);
    if (button.eventSource) {
      button.eventSource.close();
      button.eventSource = null;
      button.textContent = label;
      say("stopped following");
      return;
    }
    if (!pre) return;
    pre.textContent = "";
    pre.hidden = false;
    const add = text => {
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(text + "\n"));
      while (pre.childNodes.length > MAX_LOG_LINES) pre.removeChild(pre.firstChild);
      if (stick) pre.scrollTop = pre.scrollHeight;
    };
    const tag = d => `[${d.replica == null ? "?" : d.replica} ${d.container}]`;
    const es = new EventSource(button.dataset.live);
    let opened = false;
    const stop = text => {
      es.close();
      if (button.eventSource === es) button.eventSource = null;
      button.textContent = label;
      say(text);
    };
    button.eventSource = es;
    button.textContent = "Stop following";
    say("connecting…");
    es.onopen = () => { opened = true; say("following live"); };
    es.onmessage = e => {
      const d = JSON.parse(e.data);
      add(`${tag(d)}${d.stream === "stderr" ? " !" : ""} ${d.line}`);
    };
    es.addEventListener("replica", e => {
      const d = JSON.parse(e.data);
      add(d.state === "following"
        ? `== ${d.name} (replica ${d.replica == null ? "?" : d.replica}, ${d.container}) following`
        : `== ${d.name} ended`);
    });
    es.addEventListener("skipped", e => {
      const d = JSON.parse(e.data);
      add(`${tag(d)} … ${d.lines} lines skipped: the page did not keep up`);
    });
    es.addEventListener("end", e => stop("ended: " + JSON.parse(e.data).reason));
    es.onerror = () => {
      // No automatic reconnect: it would show the last lines again.
      if (opened) { stop("the live log was cut; press the button to follow again"); return; }
      stop("");
      act(button, "GET", button.dataset.api);
    };
  }

  // Parts marked data-refresh="<seconds>" are fetched again that often
  // (the same page; the part with the same id is swapped in). A session
  // that ended sends the page to sign-in.
  function refresh() {
    document.querySelectorAll("[data-refresh][id]").forEach(part => {
      const every = Math.max(2, Number(part.dataset.refresh) || 5) * 1000;
      const tick = async () => {
        if (document.hidden) return;
        try {
          const resp = await fetch(location.href, { credentials: "same-origin" });
          if (resp.redirected || !resp.ok) { location.reload(); return; }
          const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
          const fresh = doc.getElementById(part.id);
          const now = document.getElementById(part.id);
          if (fresh && now && !now.contains(document.activeElement)) now.replaceWith(fresh);
        } catch (_) { /* offline for a moment: try again next time */ }
      };
      setInterval(tick, every);
    });
  }

  document.addEventListener("DOMContentLoaded", () => { toggles(); follow(); refresh(); });
})();
