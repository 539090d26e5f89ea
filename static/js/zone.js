// Tell the server the operator's time zone (a cookie), so pages render times in it. If the page was
// rendered for another zone and the URL does not name one, load it once more in the right zone.
(function () {
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  if (!zone) return;
  var match = document.cookie.match(/(?:^|; )tz=([^;]*)/);
  var known = match ? decodeURIComponent(match[1]) : null;
  if (known === zone) return;
  document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
  var urlNamesZone = new URLSearchParams(window.location.search).has("tz");
  document.addEventListener("DOMContentLoaded", function () {
    if (!urlNamesZone && document.body.dataset.zone !== zone && document.body.dataset.zone) {
      window.location.reload();
    }
  });
})();
