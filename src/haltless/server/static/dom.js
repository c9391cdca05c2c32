// Small DOM and formatting helpers. Text always goes in through textContent, never innerHTML.

/** h("div", {class: "x", onclick: fn}, child, "text") */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatValue(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 100) return value.toFixed(1);
  return value.toFixed(2);
}

const UNIT_LABELS = { celsius: "°C", mm_per_s: "mm/s", ampere: "A", rpm: "rpm", percent: "%", bar: "bar" };

export function formatUnit(unit) {
  if (!unit) return "";
  return UNIT_LABELS[unit] ?? unit;
}

export function metricLabel(name) {
  return name.replaceAll("_", " ");
}

export function timeAgo(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "never";
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A separate task so screen readers notice a repeat of the same text.
  setTimeout(() => (region.textContent = text), 50);
}

/** Replace a node's children, skipping null/undefined/false (replaceChildren would show them as "null"). */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

/** Offer `text` as a file download named `filename`. */
export function download(filename, text, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A button that copies `text()` to the clipboard and says so (falls back to selecting the text's node). */
export function copyButton(label, text, { fallbackNode = null, id } = {}) {
  const button = h("button", { type: "button", class: "ghost copy", id }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      button.dataset.copied = "true";
      announce("Copied to the clipboard");
      button.textContent = "Copied ✓";
    } catch {
      // No clipboard access (plain http on another host): select the text so Ctrl+C copies it.
      if (fallbackNode) window.getSelection()?.selectAllChildren(fallbackNode);
      button.textContent = "Press Ctrl+C to copy";
    }
    setTimeout(() => (button.textContent = label), 2000);
  });
  return button;
}

/** A labelled form field. */
export function field(label, input, hint = null) {
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hint ? h("small", { class: "muted" }, hint) : null);
}
