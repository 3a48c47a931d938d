/* Stationing pages: small helpers on top of forms that work without JavaScript.
   - check-in: send the phone's position with the form when the browser allows it (never blocks);
   - optimise: show that the solver is working (it takes some seconds);
   - work log: +/- buttons next to the counts. */
(function () {
  "use strict";

  function submitOnce(form) {
    form.dataset.sent = "1";
    form.submit();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;

    if (form.classList.contains("check-in-form") && !form.dataset.sent) {
      var lat = form.querySelector("input[name=latitude]");
      var lon = form.querySelector("input[name=longitude]");
      if (!navigator.geolocation || !lat || !lon || lat.value) return;
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      if (button) {
        button.disabled = true;
        if (form.dataset.locating) button.lastChild.textContent = " " + form.dataset.locating;
      }
      var done = false;
      var finish = function () {
        if (done) return;
        done = true;
        submitOnce(form);
      };
      // Whatever the browser answers (or if it never does), the check-in goes ahead.
      window.setTimeout(finish, 6000);
      navigator.geolocation.getCurrentPosition(
        function (position) {
          lat.value = position.coords.latitude.toFixed(6);
          lon.value = position.coords.longitude.toFixed(6);
          finish();
        },
        finish,
        { enableHighAccuracy: true, timeout: 5000, maximumAge: 60000 }
      );
      return;
    }

    if (form.id === "optimise-form") {
      var busy = form.querySelector(".optimise-busy");
      var submit = form.querySelector("button[type=submit]");
      if (busy) {
        busy.querySelector(".busy-text").textContent = form.dataset.busy || "";
        busy.hidden = false;
      }
      if (submit) window.setTimeout(function () { submit.disabled = true; }, 0);
    }
  });

  function counters(root) {
    root.querySelectorAll("button.step[data-for]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var input = document.getElementById(button.dataset.for);
        if (!input) return;
        var value = parseInt(input.value || "0", 10) || 0;
        input.value = Math.max(0, Math.min(500, value + parseInt(button.dataset.step, 10)));
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { counters(document); });
  } else {
    counters(document);
  }
})();
