// The admin page's only script, served by granary at /admin/static/admin.js (the pages' CSP
// allows scripts from granary itself only: `script-src 'self'`). The page works without it.
'use strict';
document.querySelectorAll('[data-copy]').forEach(function (button) {
  button.addEventListener('click', function () {
    var target = document.getElementById(button.getAttribute('data-copy'));
    if (target && navigator.clipboard) { navigator.clipboard.writeText(target.textContent.trim()); button.textContent = 'Copied'; }
  });
});
document.querySelectorAll('[data-expires]').forEach(function (node) {
  var at = Number(node.getAttribute('data-expires'));
  function tick() {
    var left = Math.round((at - Date.now()) / 1000);
    node.textContent = left > 0 ? '(in ' + left + ' s)' : '(expired)';
  }
  tick(); setInterval(tick, 1000);
});
