// API keys (admins): the credentials of edge agents. Create (the secret is shown once), list, revoke.

import { announce, copyButton, field, fill, formatTime, h } from "./dom.js";

export class ApiKeysView {
  constructor({ store, api }) {
    this.store = store;
    this.api = api;
    this.keys = [];
  }

  mount(container) {
    if (!this.store.can("admin")) {
      fill(container, h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "API keys")), h("p", { class: "muted", id: "keys-denied" }, "Only admins manage API keys."));
      return;
    }
    this.error = h("p", { class: "error", role: "alert", id: "keys-error" });
    this.tbody = h("tbody");
    this.secret = h("div", { id: "new-key", role: "status" });
    fill(
      container,
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "API keys")),
      h("p", { class: "muted" }, "Edge agents send readings with an API key; a key may ingest readings and nothing else."),
      this.error,
      this.#form(),
      this.secret,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "rules", id: "keys-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Name", "Starts with", "Created", "State"].map((t) => h("th", { scope: "col" }, t)),
              h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")),
            ),
          ),
          this.tbody,
        ),
      ),
    );
    this.load();
  }

  unmount() {}

  async load() {
    if (!this.tbody) return;
    try {
      this.keys = await this.api.get("/api-keys");
      this.error.textContent = "";
    } catch (error) {
      this.error.textContent = `Could not load the keys: ${error.message}`;
    }
    if (this.keys.length === 0) {
      this.tbody.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No API keys yet.")));
      return;
    }
    this.tbody.replaceChildren(
      ...this.keys.map((key) =>
        h(
          "tr",
          { dataset: { keyId: key.id, revoked: String(key.revoked_at !== null) } },
          h("th", { scope: "row" }, key.name),
          h("td", {}, h("code", {}, `${key.prefix}…`)),
          h("td", {}, formatTime(key.created_at)),
          h("td", { class: "key-state" }, key.revoked_at ? `Revoked ${formatTime(key.revoked_at)}` : "✔ Active"),
          h(
            "td",
            { class: "actions" },
            key.revoked_at
              ? null
              : h(
                  "button",
                  { type: "button", class: "danger revoke", onclick: () => this.#revoke(key) },
                  "Revoke",
                  h("span", { class: "visually-hidden" }, ` ${key.name}`),
                ),
          ),
        ),
      ),
    );
  }

  async #revoke(key) {
    if (!window.confirm(`Revoke the key “${key.name}”? Agents using it can no longer send readings.`)) return;
    try {
      await this.api.delete(`/api-keys/${key.id}`);
      announce(`Key ${key.name} revoked`);
    } catch (error) {
      this.error.textContent = error.message;
    }
    await this.load();
  }

  #form() {
    const name = h("input", { id: "new-key-name", name: "name", required: true, maxlength: "200", placeholder: "agent hall 2" });
    const error = h("p", { class: "error", role: "alert", id: "new-key-error" });
    const form = h(
      "form",
      { class: "card rule-form", id: "new-key-form" },
      h("h2", {}, "New API key"),
      h("div", { class: "form-grid" }, field("Key name", name, "where the agent runs, say")),
      error,
      h("button", { type: "submit", class: "primary" }, "Create key"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const created = await this.api.post("/api-keys", { name: name.value.trim() });
        error.textContent = "";
        form.reset();
        const secret = h("code", { class: "secret", id: "new-key-secret" }, created.key);
        fill(
          this.secret,
          h(
            "div",
            { class: "card" },
            h("p", {}, h("strong", {}, `The key “${created.name}”, shown this once: `), "copy it now into the agent's HALTLESS_AGENT_KEY."),
            secret,
            " ",
            copyButton("Copy key", () => created.key, { fallbackNode: secret, id: "copy-key" }),
          ),
        );
        announce(`Key ${created.name} created`);
        await this.load();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    return form;
  }
}
