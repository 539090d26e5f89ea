// Small enhancements; every control also works as a plain link or GET form without them.
(function () {
  document.querySelectorAll("[data-autosubmit]").forEach(function (control) {
    control.addEventListener("change", function () {
      control.form.submit();
    });
  });
  // Close the custom-range popover when clicking elsewhere.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.custom[open], details.switcher[open]").forEach(function (details) {
      if (!details.contains(event.target)) {
        details.removeAttribute("open");
      }
    });
  });
})();
