// leadroute console: small progressive enhancements only; every page works without this file.
"use strict";
document.addEventListener("submit", (event) => {
  // <form data-confirm="..."> asks before a change that affects every lead (activate, rollback, pause)
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("change", (event) => {
  // choosing a rule file shows its text in the editor next to it, so errors can point at lines
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || input.type !== "file" || !input.dataset.fillTextarea) return;
  const target = document.getElementById(input.dataset.fillTextarea);
  const file = input.files && input.files[0];
  if (!target || !file) return;
  file.text().then((text) => { target.value = text; });
});
