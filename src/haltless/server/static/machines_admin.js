// Machines: everyone sees the list and each machine's agent config; operators switch maintenance on and off;
// admins create, rename, move, tag and delete machines.

import { announce, copyButton, download, field, fill, formatTime, h } from "./dom.js";
import { statusBadge } from "./overview.js";

/** The alias an agent config uses for a machine: its name in lowercase words joined by "-". */
export function machineAlias(name) {
  const alias = name
    .normalize("NFKD")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return alias || "machine";
}

/** A ready `haltless agent` configuration for one machine (the simulator source stands in for sensors). */
export function agentConfig(machine, origin = location.origin) {
  const alias = machineAlias(machine.name);
  return [
    `# haltless agent --config ${alias}.toml   (for "${machine.name.replaceAll('"', "'")}")`,
    `server_url = "${origin}"`,
    `# An API key (admins create them under "API keys"), from this environment variable:`,
    `api_key_env = "HALTLESS_AGENT_KEY"`,
    ``,
    `[machines]`,
    `${alias} = "${machine.id}"`,
    ``,
    `[buffer]`,
    `path = "${alias}-buffer.db"`,
    ``,
    `# Replace with your MQTT, OPC UA or Modbus source (docs/agent.md); "${alias}" names this machine there.`,
    `[[sources]]`,
    `type = "simulator"`,
    `name = "try-it"`,
    `machines = ["${alias}"]`,
    ``,
  ].join("\n");
}

export class MachinesView {
  constructor({ store, api, reloadFleet }) {
    this.store = store;
    this.api = api;
    this.reloadFleet = reloadFleet ?? (async () => {});
    this.machines = [];
  }

  mount(container) {
    const admin = this.store.can("admin");
    this.error = h("p", { class: "error", role: "alert", id: "machines-error" });
    this.tbody = h("tbody");
    this.editor = h("div", { id: "machine-editor" });
    this.snippet = h("div", { id: "agent-config" });
    fill(
      container,
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Machines")),
      h(
        "p",
        { class: "muted" },
        admin
          ? "Register machines, rename, move or tag them, and take them into maintenance. Names are unique."
          : this.store.can("operator")
            ? "Operators can switch maintenance on and off; only admins add, change or delete machines."
            : "Your role can view machines; operators and admins change them.",
      ),
      this.error,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "rules", id: "machines-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Name", "Location", "Tags", "Status", "Last reading"].map((t) => h("th", { scope: "col" }, t)),
              h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")),
            ),
          ),
          this.tbody,
        ),
      ),
      this.editor,
      this.snippet,
      admin ? this.#form(null) : null,
    );
    this.load();
  }

  unmount() {}

  async load() {
    try {
      const page = await this.api.get("/machines", { limit: 1000 });
      this.machines = page.items;
      this.error.textContent = "";
    } catch (error) {
      this.error.textContent = `Could not load the machines: ${error.message}`;
    }
    this.#render();
  }

  #render() {
    if (this.machines.length === 0) {
      this.tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No machines yet.")));
      return;
    }
    const operator = this.store.can("operator");
    const admin = this.store.can("admin");
    const named = (label, machine) => [label, h("span", { class: "visually-hidden" }, ` ${machine.name}`)];
    this.tbody.replaceChildren(
      ...this.machines.map((machine) =>
        h(
          "tr",
          { dataset: { machineId: machine.id, maintenance: String(machine.maintenance) } },
          h("th", { scope: "row" }, h("a", { href: `#/machines/${machine.id}` }, machine.name)),
          h("td", {}, machine.location ?? "–"),
          h("td", {}, machine.tags.length ? machine.tags.join(", ") : "–"),
          h("td", {}, statusBadge(machine.status)),
          h("td", {}, machine.last_seen_at ? formatTime(machine.last_seen_at) : "never"),
          h(
            "td",
            { class: "actions" },
            h("button", { type: "button", class: "ghost agent-config", onclick: () => this.#showConfig(machine) }, named("Agent config", machine)),
            operator
              ? h(
                  "button",
                  { type: "button", class: "maintenance", onclick: () => this.#maintenance(machine) },
                  named(machine.maintenance ? "End maintenance" : "Start maintenance", machine),
                )
              : null,
            admin ? h("button", { type: "button", class: "edit", onclick: () => this.#edit(machine) }, named("Edit", machine)) : null,
            admin ? h("button", { type: "button", class: "danger delete", onclick: () => this.#delete(machine) }, named("Delete", machine)) : null,
          ),
        ),
      ),
    );
  }

  #showConfig(machine) {
    const text = agentConfig(machine);
    const pre = h("pre", { class: "snippet", id: "agent-config-text" }, text);
    fill(
      this.snippet,
      h(
        "section",
        { class: "card", "aria-labelledby": "agent-config-title" },
        h("h2", { id: "agent-config-title" }, `Agent config for ${machine.name}`),
        h("p", { class: "muted" }, "Save it as a file, set HALTLESS_AGENT_KEY to an API key, and run the command on its first line."),
        pre,
        h(
          "div",
          { class: "form-actions" },
          copyButton("Copy", () => text, { fallbackNode: pre, id: "copy-agent-config" }),
          h("button", { type: "button", class: "ghost", id: "download-agent-config", onclick: () => download(`${machineAlias(machine.name)}.toml`, text, "application/toml") }, "Download"),
        ),
      ),
    );
    pre.scrollIntoView({ block: "nearest" });
  }

  async #maintenance(machine) {
    try {
      await this.api.patch(`/machines/${machine.id}`, { maintenance: !machine.maintenance });
      announce(`${machine.name}: maintenance ${machine.maintenance ? "ended" : "started"}`);
    } catch (error) {
      this.error.textContent = error.message;
    }
    await this.load();
  }

  async #delete(machine) {
    if (!window.confirm(`Delete the machine “${machine.name}” with all its readings and alerts? This cannot be undone.`)) return;
    try {
      await this.api.delete(`/machines/${machine.id}`);
      announce(`Machine ${machine.name} deleted`);
      this.editor.replaceChildren();
    } catch (error) {
      this.error.textContent = error.message;
    }
    await this.load();
    await this.reloadFleet();
  }

  #edit(machine) {
    fill(this.editor, this.#form(machine));
    this.editor.querySelector("input").focus();
  }

  /** The create form (machine null) or the edit form of one machine. */
  #form(machine) {
    const prefix = machine ? "edit-machine" : "new-machine";
    const name = h("input", { id: `${prefix}-name`, name: "name", required: true, maxlength: "200", value: machine?.name ?? "" });
    const locationInput = h("input", { id: `${prefix}-location`, name: "location", maxlength: "200", value: machine?.location ?? "" });
    const tags = h("input", { id: `${prefix}-tags`, name: "tags", value: machine ? machine.tags.join(", ") : "" });
    const error = h("p", { class: "error", role: "alert", id: `${prefix}-error` });
    const form = h(
      "form",
      { class: "card rule-form", id: `${prefix}-form` },
      h("h2", {}, machine ? `Edit ${machine.name}` : "New machine"),
      h(
        "div",
        { class: "form-grid" },
        field("Name", name),
        field("Location", locationInput),
        field("Tags", tags, "comma-separated"),
      ),
      error,
      h(
        "div",
        { class: "form-actions" },
        h("button", { type: "submit", class: "primary" }, machine ? "Save machine" : "Add machine"),
        machine ? h("button", { type: "button", class: "ghost", onclick: () => this.editor.replaceChildren() }, "Cancel") : null,
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {
        name: name.value.trim(),
        location: locationInput.value.trim() || null,
        tags: tags.value
          .split(",")
          .map((t) => t.trim())
          .filter(Boolean),
      };
      if (!body.name) {
        error.textContent = "A machine needs a name.";
        return;
      }
      try {
        if (machine) await this.api.patch(`/machines/${machine.id}`, body);
        else await this.api.post("/machines", body);
        error.textContent = "";
        announce(`Machine ${body.name} ${machine ? "saved" : "added"}`);
        if (machine) this.editor.replaceChildren();
        else form.reset();
        await this.load();
        await this.reloadFleet();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    return form;
  }
}
