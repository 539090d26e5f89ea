// Configuration pages: copy buttons, snippet tabs and confirmations. Everything works without them, they
// only save a selection (a static file rather than an inline script: the Content-Security-Policy allows no inline code).
document.addEventListener("click", (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const text = document.getElementById(copy.dataset.copy).textContent;
    navigator.clipboard.writeText(text).then(() => { copy.textContent = "Copied"; setTimeout(() => { copy.textContent = "Copy"; }, 1500); });
  }
  const tab = event.target.closest("[data-snippet]");
  if (tab) {
    document.querySelectorAll("[data-snippet]").forEach((b) => b.setAttribute("aria-selected", b === tab ? "true" : "false"));
    document.querySelectorAll(".snippet").forEach((s) => { s.hidden = s.id !== "snippet-" + tab.dataset.snippet; });
  }
});
document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => { if (!window.confirm(form.dataset.confirm)) event.preventDefault(); });
});
