// Task page: keys 1-4 press the matching verdict button (unless typing in a field),
// and a countdown shows the time left on the lease. The server measures time on task.
(function () {
  "use strict";

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) return;
    var button = document.querySelector('#vote-form button[data-shortcut="' + event.key + '"]');
    if (!button) return;
    event.preventDefault();
    button.click();
  });

  function startTimer() {
    var timer = document.getElementById("lease-timer");
    if (!timer) return;
    var expires = Date.parse(timer.dataset.expires);
    function tick() {
      var left = Math.max(0, Math.round((expires - Date.now()) / 1000));
      var minutes = Math.floor(left / 60);
      var seconds = String(left % 60).padStart(2, "0");
      timer.textContent = left > 0 ? minutes + ":" + seconds : "expired — ask for the next task";
      if (left > 0) window.setTimeout(tick, 1000);
    }
    tick();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", startTimer);
  } else {
    startTimer();
  }
})();
