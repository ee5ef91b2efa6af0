// Outreach pages work without this file; it adds live refresh, the variable picker and
// the template preview. No framework, no build step.
"use strict";

// Elements with data-refresh="N" are replaced by the same element of a fresh copy of
// the page every N seconds while data-refresh-while is present on them.
function startRefresh(element) {
  const seconds = Number(element.dataset.refresh) || 2;
  setTimeout(async () => {
    try {
      const response = await fetch(location.href, { headers: { Accept: "text/html" } });
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(element.id);
      if (fresh) {
        element.replaceWith(fresh);
        if (fresh.dataset.refresh) startRefresh(fresh);
        return;
      }
    } catch (error) {
      // Keep the page as it is; try again.
    }
    startRefresh(element);
  }, seconds * 1000);
}

// The variable picker puts {{ name }} where the cursor is in the chosen field.
function insertVariable(button) {
  const target = document.getElementById(button.dataset.target || "f-body_text");
  const text = "{{ " + button.dataset.variable + " }}";
  const start = target.selectionStart ?? target.value.length;
  const end = target.selectionEnd ?? start;
  target.value = target.value.slice(0, start) + text + target.value.slice(end);
  target.focus();
  target.selectionStart = target.selectionEnd = start + text.length;
  target.dispatchEvent(new Event("input", { bubbles: true }));
}

// A form with data-preview posts itself to that URL as the user types; the answer
// (an HTML fragment) replaces the element named by data-preview-into.
function startPreview(form) {
  let timer = null;
  const into = document.getElementById(form.dataset.previewInto);
  const update = async () => {
    const response = await fetch(form.dataset.preview, { method: "POST", body: new FormData(form) });
    into.innerHTML = await response.text();
  };
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 300); });
  form.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(update, 50); });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(startRefresh);
  document.querySelectorAll("[data-variable]").forEach((button) => {
    button.addEventListener("click", () => insertVariable(button));
  });
  document.querySelectorAll("form[data-preview]").forEach(startPreview);
  // A form whose work takes a while says so once sent, and cannot be sent twice.
  document.querySelectorAll("form[data-busy]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (event.defaultPrevented) return;
      const button = form.querySelector("button[type=submit]");
      if (!button) return;
      button.disabled = true;
      button.textContent = form.dataset.busy;
      form.setAttribute("aria-busy", "true");
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  const problem = document.getElementById("problem");
  if (problem) problem.setAttribute("tabindex", "-1"), problem.focus();
});
