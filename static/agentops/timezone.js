// The browser's time zone, for pages of someone who has not chosen one: kept in the `tz`
// cookie, which the server checks against the IANA list before using it.
(function () {
  "use strict";
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) return;
  var current = (document.cookie.match(/(?:^|;\s*)tz=([^;]*)/) || [])[1];
  if (current === zone) return;
  document.cookie = "tz=" + zone + "; path=/; max-age=31536000; samesite=lax" +
    (location.protocol === "https:" ? "; secure" : "");
})();
