/* Green channel (绿色通道): countdowns, the activation form's quick inputs, and the live board and
   case page that follow the server's event stream. Every page works without this script; it makes
   them live. Texts shown to people come from data attributes rendered by the server (translated). */
(function () {
  "use strict";

  // --- the clock: the server's, so that a phone whose clock is off still counts right ----------
  let skew = 0;
  function syncClock(root) {
    const el = root && root.querySelector ? root.querySelector("[data-server-now]") : null;
    const at = el ? Date.parse(el.getAttribute("data-server-now")) : NaN;
    if (!Number.isNaN(at)) skew = at - Date.now();
  }
  function now() { return Date.now() + skew; }

  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function duration(seconds) {
    const s = Math.floor(Math.abs(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h > 0 ? h + ":" + pad(m) + ":" + pad(r) : pad(m) + ":" + pad(r);
  }

  // Deadlines count down (amber under data-warn seconds, red under data-alarm, "closed"/"overdue"
  // when passed); data-since counts up (amber past data-warn, red past data-alarm).
  function tick() {
    const t = now();
    document.querySelectorAll(".g-count").forEach(function (el) {
      const warn = parseFloat(el.getAttribute("data-warn") || "NaN");
      const alarm = parseFloat(el.getAttribute("data-alarm") || "NaN");
      let state = "";
      if (el.hasAttribute("data-deadline")) {
        const left = (Date.parse(el.getAttribute("data-deadline")) - t) / 1000;
        if (Number.isNaN(left)) return;
        if (left < 0) {
          const passed = el.getAttribute("data-passed");
          el.textContent = (passed ? passed + " " : "-") + duration(left);
          state = "late";
        } else {
          el.textContent = duration(left);
          state = left < alarm ? "late" : left < warn ? "warn" : Number.isNaN(warn) ? "" : "ok";
        }
      } else if (el.hasAttribute("data-since")) {
        const gone = (t - Date.parse(el.getAttribute("data-since"))) / 1000;
        if (Number.isNaN(gone)) return;
        el.textContent = duration(Math.max(0, gone));
        state = gone >= alarm ? "late" : gone >= warn ? "warn" : Number.isNaN(warn) ? "" : "ok";
      }
      el.classList.toggle("g-ok", state === "ok");
      el.classList.toggle("g-warn", state === "warn");
      el.classList.toggle("g-late", state === "late");
    });
  }

  // --- the live connection ---------------------------------------------------------------------
  function liveState(state) {
    const el = document.getElementById("g-live-state");
    if (!el) return;
    el.hidden = false;
    el.setAttribute("data-state", state);
    const text = el.getAttribute("data-text-" + state);
    const label = el.querySelector(".g-live-text");
    if (text && label) label.textContent = text;
  }

  // Follows the board's stream; ``onChange(frame)`` runs for each case frame, and with null after a
  // reconnection (frames may have been missed). Without a stream (refused, or no EventSource), polls.
  function follow(url, onChange) {
    let polling = null;
    function poll() {
      if (polling) return;
      liveState("polling");
      polling = window.setInterval(function () { onChange(null); }, 20000);
    }
    if (!url || !window.EventSource) { poll(); return; }
    const source = new EventSource(url);
    let opened = false;
    source.addEventListener("hello", function () {
      liveState("live");
      if (opened) onChange(null);
      opened = true;
    });
    source.addEventListener("case", function (e) {
      let data = {};
      try { data = JSON.parse(e.data); } catch (err) { data = {}; }
      onChange(data);
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) { poll(); } else { liveState("reconnecting"); }
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function fetchPart(url) {
    return fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin", cache: "no-store" }).then(
      function (r) { if (!r.ok) throw new Error(String(r.status)); return r.text(); }
    );
  }

  // A part of the page the person is typing into is left alone.
  function busy(el) {
    if (el.contains(document.activeElement) && document.activeElement !== document.body &&
        /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)) return true;
    return Array.prototype.some.call(el.querySelectorAll("details[open] textarea, details[open] input[type=text]"),
      function (f) { return f.value.trim() !== ""; });
  }

  // Run one refresh at a time; a change heard meanwhile runs another one after it.
  function serial(fn) {
    let running = false, again = false;
    return function run() {
      if (running) { again = true; return; }
      running = true;
      Promise.resolve(fn()).catch(function () { /* the next frame or poll tries again */ }).then(function () {
        running = false;
        if (again) { again = false; run(); }
      });
    };
  }

  function flashMessage(text, kind) {
    const area = document.getElementById("g-flash");
    if (!area) { window.alert(text); return; }
    const div = document.createElement("div");
    div.className = "alert alert-" + (kind || "warning") + " alert-dismissible py-2";
    div.setAttribute("role", "alert");
    div.textContent = text;
    const close = document.createElement("button");
    close.type = "button"; close.className = "btn-close"; close.setAttribute("data-bs-dismiss", "alert");
    div.appendChild(close);
    area.prepend(div);
  }

  // --- sound: browsers allow audio only after a gesture, hence the toggle -------------------------
  const SOUND_KEY = "yilian.green.sound";
  let audio = null;
  function audioContext() {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    if (!audio) audio = new AC();
    if (audio.state === "suspended") audio.resume();
    return audio;
  }
  function soundOn() {
    try { return window.localStorage.getItem(SOUND_KEY) === "1"; } catch (e) { return false; }
  }
  function beep() {
    const ctx = audioContext();
    if (!ctx) return;
    const t = ctx.currentTime + 0.02;
    [0, 0.32, 0.64].forEach(function (d, i) {
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = i === 1 ? 660 : 880;
      gain.gain.setValueAtTime(0.0001, t + d);
      gain.gain.exponentialRampToValueAtTime(0.3, t + d + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + d + 0.26);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t + d);
      osc.stop(t + d + 0.28);
    });
  }
  function setupSound() {
    const button = document.getElementById("g-sound");
    if (!button) return;
    button.hidden = false;
    function show() {
      const on = soundOn();
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.classList.toggle("btn-warning", on);
      button.classList.toggle("btn-outline-secondary", !on);
      button.querySelector("i").className = on ? "bi bi-volume-up-fill" : "bi bi-volume-mute";
      button.querySelector(".g-sound-text").textContent = button.getAttribute(on ? "data-text-on" : "data-text-off");
    }
    button.addEventListener("click", function () {
      try { window.localStorage.setItem(SOUND_KEY, soundOn() ? "0" : "1"); } catch (e) { /* private mode */ }
      show();
      if (soundOn()) beep();
    });
    // Sound was on before this page loaded: the first tap anywhere unlocks it again.
    if (soundOn()) {
      const unlock = function () { audioContext(); document.removeEventListener("pointerdown", unlock); };
      document.addEventListener("pointerdown", unlock);
    }
    show();
  }

  // --- the board -------------------------------------------------------------------------------
  function awaitingIds(root) {
    return new Set(Array.prototype.map.call(root.querySelectorAll("[data-awaiting]"), function (el) {
      return el.getAttribute("data-case");
    }));
  }

  function setupBoard(board) {
    const rows = document.getElementById("g-rows");
    const baseTitle = document.title;
    function retitle() {
      const n = rows.querySelectorAll("[data-awaiting]").length;
      document.title = (n ? "(" + n + ") " : "") + baseTitle;
    }
    const refresh = serial(function () {
      const before = awaitingIds(rows);
      return fetchPart(board.getAttribute("data-rows-url")).then(function (html) {
        const tpl = document.createElement("template");
        tpl.innerHTML = html;
        // Keep a card someone is typing a reason into as it is.
        rows.querySelectorAll("[data-case]").forEach(function (old) {
          if (!busy(old)) return;
          const fresh = tpl.content.getElementById(old.id);
          if (fresh) fresh.replaceWith(old);
        });
        rows.replaceChildren(tpl.content);
        syncClock(rows);
        if (window.htmx) window.htmx.process(rows);
        let fresh = 0;
        const announce = document.getElementById("g-announce");
        rows.querySelectorAll("[data-awaiting]").forEach(function (card) {
          if (before.has(card.getAttribute("data-case"))) return;
          fresh += 1;
          if (announce) {
            const what = card.querySelector(".g-protocol-badge"), who = card.querySelector(".g-patient");
            announce.textContent = [announce.getAttribute("data-text-new"), what && what.textContent,
              who && who.textContent].filter(Boolean).join(" ");
          }
          card.classList.add("g-flash");
          window.setTimeout(function () { card.classList.remove("g-flash"); }, 6000);
        });
        if (fresh) {
          board.setAttribute("data-alerts", String(parseInt(board.getAttribute("data-alerts") || "0", 10) + fresh));
          if (soundOn()) beep();
          if (navigator.vibrate) navigator.vibrate([200, 100, 200]);
        }
        retitle();
        tick();
      });
    });
    follow(board.getAttribute("data-events-url"), function () { refresh(); });
    // A deadline that has just passed (an answer due, a window closing) changes what the server
    // shows: the worker re-offers an unanswered case within seconds. Look again for a minute
    // after any deadline passes, in case its event did not reach this board.
    window.setInterval(function () {
      const t = now();
      const recent = Array.prototype.some.call(rows.querySelectorAll(".g-count[data-deadline]"), function (el) {
        const passed = t - Date.parse(el.getAttribute("data-deadline"));
        return passed > 0 && passed < 60000;
      });
      if (recent) refresh();
    }, 10000);
    // Accept and decline from the board: no reload (the sound stays unlocked).
    document.body.addEventListener("htmx:afterRequest", function (e) {
      const form = e.detail.elt;
      if (!form || !form.classList || !form.classList.contains("g-act")) return;
      const xhr = e.detail.xhr;
      if (e.detail.successful) { refresh(); return; }
      if (xhr && xhr.status) flashMessage(xhr.responseText || String(xhr.status), xhr.status === 409 ? "warning" : "danger");
      refresh();
    });
    document.body.addEventListener("htmx:sendError", function () { refresh(); });
    setupSound();
    const wall = document.getElementById("g-wall");
    if (wall) {
      wall.hidden = false;
      wall.addEventListener("click", function () {
        const on = document.body.classList.toggle("g-wall-mode");
        wall.setAttribute("aria-pressed", on ? "true" : "false");
        if (on && document.documentElement.requestFullscreen) document.documentElement.requestFullscreen().catch(function () {});
        if (!on && document.fullscreenElement && document.exitFullscreen) document.exitFullscreen();
      });
    }
    retitle();
  }

  // --- the case page ---------------------------------------------------------------------------
  function setupCase(page) {
    const live = document.getElementById("g-case-live");
    const notice = document.getElementById("g-notice");
    const id = page.getAttribute("data-case");
    const swap = serial(function () {
      return fetchPart(page.getAttribute("data-live-url")).then(function (html) {
        const patient = document.getElementById("g-patient");
        const tpl = document.createElement("template");
        tpl.innerHTML = html;
        const slot = tpl.content.getElementById("g-patient-slot");
        if (slot && patient) slot.replaceWith(patient);
        live.replaceChildren(tpl.content);
        notice.hidden = true;
        syncClock(live);
        tick();
      });
    });
    function changed(frame) {
      if (frame && frame.case && frame.case !== id) return;
      if (busy(live)) { notice.hidden = false; return; }
      swap();
    }
    document.getElementById("g-notice-refresh").addEventListener("click", swap);
    follow(page.getAttribute("data-events-url"), changed);
  }

  // --- the activation form ---------------------------------------------------------------------
  function localInputValue(ms, offsetMinutes) {
    // The value of a datetime-local input in the server's time zone (not the phone's).
    return new Date(ms + offsetMinutes * 60000).toISOString().slice(0, 16);
  }

  function setupActivation(form) {
    const offset = parseInt(form.getAttribute("data-utc-offset") || "0", 10);
    const onsetAt = form.querySelector("[name=onset_at]");
    const unknown = form.querySelector("[name=onset_unknown]");
    function changedField(el) { el.dispatchEvent(new Event("change", { bubbles: true })); }
    function showProtocol() {
      const chosen = form.querySelector("[name=protocol]:checked");
      const key = chosen ? chosen.value : "";
      form.querySelectorAll(".g-proto-block").forEach(function (b) { b.hidden = b.getAttribute("data-protocol") !== key; });
      const hint = form.querySelector(".g-proto-hint");
      if (hint) hint.hidden = Boolean(key);
    }
    form.addEventListener("change", function (e) {
      const el = e.target;
      if (el.name === "protocol") showProtocol();
      if (el.name === "onset_ago" && el.checked) {
        onsetAt.value = localInputValue(now() - parseInt(el.value, 10) * 60000, offset);
        unknown.checked = false;
      }
      if (el === onsetAt) {
        form.querySelectorAll("[name=onset_ago]").forEach(function (r) { r.checked = false; });
        if (onsetAt.value) unknown.checked = false;
      }
      if (el === unknown && unknown.checked) {
        onsetAt.value = "";
        form.querySelectorAll("[name=onset_ago]").forEach(function (r) { r.checked = false; });
      }
    }, true);
    form.querySelectorAll("[data-fill-now]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        const input = document.getElementById(button.getAttribute("data-fill-now"));
        input.value = localInputValue(now(), offset);
        changedField(input);
      });
    });
    // Enter in a field does not send the case; only the send buttons do, once.
    form.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && e.target.tagName === "INPUT") e.preventDefault();
    });
    form.addEventListener("submit", function (e) {
      if (form.getAttribute("data-sending") === "1") { e.preventDefault(); return; }
      form.setAttribute("data-sending", "1");
      form.querySelectorAll(".g-send, .g-send-here").forEach(function (b) { b.classList.add("disabled"); });
      window.setTimeout(function () { form.removeAttribute("data-sending"); }, 15000);
    });
    showProtocol();
  }

  document.addEventListener("DOMContentLoaded", function () {
    syncClock(document);
    const board = document.getElementById("g-board");
    if (board) setupBoard(board);
    const page = document.getElementById("g-case");
    if (page) setupCase(page);
    const form = document.getElementById("g-activate");
    if (form) setupActivation(form);
    document.body.addEventListener("htmx:afterSettle", tick);
    tick();
    window.setInterval(tick, 1000);
  });
})();
