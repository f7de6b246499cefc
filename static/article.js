// Byline article view: bring the highlighted (cited) span into view.
"use strict";

(function () {
  const mark = document.getElementById("highlight");
  if (mark) {
    mark.scrollIntoView({ block: "center" });
    mark.focus({ preventScroll: true });
  }
})();
