"use strict";
// The population selectors apply on change. Changing the space or dataset resets the configuration (a
// fingerprint belongs to one dataset); options left at their default are not sent, so URLs stay short.

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("selectors");
  if (!form) return;
  form.addEventListener("change", (event) => {
    const resets = event.target.dataset.resets;
    if (resets) form.elements[resets].value = "";
    form.requestSubmit();
  });
  form.addEventListener("submit", () => {
    for (const select of form.querySelectorAll("select")) {
      select.disabled = select.value === "";
    }
  });
  // Back navigation restores the page from cache with the selects disabled: enable them again.
  window.addEventListener("pageshow", () => {
    for (const select of form.querySelectorAll("select")) select.disabled = false;
  });
});
