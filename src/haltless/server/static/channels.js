// Notification channels (admins): webhooks and email through an SMTP relay. Create, edit, delete, and "Send
// test" with its outcome. Secrets (the webhook's signing secret, the SMTP password) are write-only: the server
// never returns them, and the form leaves them empty when editing ("leave empty to keep").

import { announce, field, fill, formatTime, h } from "./dom.js";
import { adminOnly, named, table, words } from "./matchers.js";

const FORMATS = [
  ["haltless", "Haltless JSON (signed)"],
  ["slack", "Slack"],
  ["mattermost", "Mattermost"],
  ["teams", "Microsoft Teams"],
];
const SECURITY = [
  ["starttls", "STARTTLS"],
  ["tls", "TLS"],
  ["none", "None"],
];

/** A random signing secret: 32 hex characters (128 bits). */
export function generatedSecret() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function target(channel) {
  if (channel.webhook) return channel.webhook.url;
  return `${channel.email.to_addresses.join(", ")} via ${channel.email.host}:${channel.email.port}`;
}

function settings(channel) {
  if (channel.webhook) {
    const format = FORMATS.find(([v]) => v === channel.webhook.format)?.[1] ?? channel.webhook.format;
    return `${format}; secret ${channel.webhook.has_secret ? "set" : "not set"}`;
  }
  const e = channel.email;
  return `${e.security}; ${e.username ? `login ${e.username}, password ${e.has_password ? "set" : "not set"}` : "no login"}`;
}

export class ChannelsView {
  constructor({ store, api }) {
    this.store = store;
    this.api = api;
    this.channels = [];
  }

  mount(container) {
    if (adminOnly(container, this.store, "Notification channels", "channels-denied", "Only admins manage notification channels.")) return;
    this.error = h("p", { class: "error", role: "alert", id: "channels-error" });
    this.outcome = h("div", { id: "channel-test-result", role: "status" });
    this.tbody = h("tbody");
    this.editor = h("div", { id: "channel-editor" });
    fill(
      container,
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Notification channels")),
      h("p", { class: "muted" }, "Where notifications go: webhooks (Haltless JSON, Slack, Mattermost, Teams) and email. Policies decide what is sent to which channel."),
      this.error,
      this.outcome,
      table("channels-table", ["Name", "Type", "Sends to", "Settings", "Changed"], this.tbody),
      this.editor,
      this.#form(null),
    );
    this.load();
  }

  unmount() {}

  async load() {
    if (!this.tbody) return;
    try {
      this.channels = await this.api.get("/notification-channels");
      this.error.textContent = "";
    } catch (error) {
      this.error.textContent = `Could not load the channels: ${error.message}`;
    }
    if (this.channels.length === 0) {
      this.tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No channels yet.")));
      return;
    }
    this.tbody.replaceChildren(
      ...this.channels.map((channel) =>
        h(
          "tr",
          { dataset: { channelId: channel.id } },
          h("th", { scope: "row" }, channel.name),
          h("td", {}, channel.type === "webhook" ? "Webhook" : "Email"),
          h("td", { class: "channel-target" }, target(channel)),
          h("td", { class: "channel-settings" }, settings(channel)),
          h("td", {}, formatTime(channel.updated_at)),
          h(
            "td",
            { class: "actions" },
            h("button", { type: "button", class: "test", onclick: (e) => this.#test(channel, e.currentTarget) }, named("Send test", channel.name)),
            h("button", { type: "button", class: "edit", onclick: () => this.#edit(channel) }, named("Edit", channel.name)),
            h("button", { type: "button", class: "danger delete", onclick: () => this.#delete(channel) }, named("Delete", channel.name)),
          ),
        ),
      ),
    );
  }

  async #test(channel, button) {
    button.disabled = true;
    fill(this.outcome, h("p", { class: "muted" }, `Sending a test notification to ${channel.name}…`));
    this.outcome.dataset.ok = "";
    try {
      const result = await this.api.post(`/notification-channels/${channel.id}/test`);
      this.outcome.dataset.ok = String(result.ok);
      const text = result.ok
        ? `✔ ${channel.name}: the test notification was delivered.`
        : `✖ ${channel.name}: the test notification failed: ${result.error}`;
      fill(this.outcome, h("p", { class: result.ok ? "card test-ok" : "card test-failed" }, text));
      announce(text);
    } catch (error) {
      this.outcome.dataset.ok = "false";
      fill(this.outcome, h("p", { class: "card test-failed" }, `✖ Could not send a test to ${channel.name}: ${error.message}`));
    } finally {
      button.disabled = false;
    }
  }

  async #delete(channel) {
    if (!window.confirm(`Delete the channel “${channel.name}” with its notifications? Policies keep their other channels.`)) return;
    try {
      await this.api.delete(`/notification-channels/${channel.id}`);
      announce(`Channel ${channel.name} deleted`);
      this.editor.replaceChildren();
    } catch (error) {
      this.error.textContent = error.message;
    }
    await this.load();
  }

  #edit(channel) {
    fill(this.editor, this.#form(channel));
    this.editor.querySelector("input").focus();
  }

  /** The create form (channel null) or the edit form of one channel (its type cannot change). */
  #form(channel) {
    const prefix = channel ? "edit-channel" : "new-channel";
    const input = (name, attrs = {}) => h("input", { id: `${prefix}-${name}`, name, autocomplete: "off", ...attrs });
    const select = (name, options, value) => {
      const node = h("select", { id: `${prefix}-${name}`, name }, ...options.map(([v, t]) => h("option", { value: v }, t)));
      node.value = value;
      return node;
    };
    const hook = channel?.webhook;
    const mail = channel?.email;
    const keep = channel ? "leave empty to keep the current one" : null;
    const name = input("name", { required: true, maxlength: "200", value: channel?.name ?? "" });
    const type = select("type", [["webhook", "Webhook"], ["email", "Email"]], channel?.type ?? "webhook");
    type.disabled = Boolean(channel);
    // Webhook settings
    const url = input("url", { type: "url", value: hook?.url ?? "", placeholder: "https://hooks.example.com/haltless" });
    const format = select("format", FORMATS, hook?.format ?? "haltless");
    const secret = input("secret", { type: "password", minlength: "16", autocomplete: "new-password", placeholder: channel ? "(unchanged)" : "" });
    const generate = h(
      "button",
      {
        type: "button",
        class: "ghost",
        id: `${prefix}-generate-secret`,
        onclick: () => {
          secret.value = generatedSecret();
          secret.type = "text"; // shown while the form is open, to copy into the receiver
        },
      },
      "Generate a secret",
    );
    // Email settings
    const host = input("host", { value: mail?.host ?? "" });
    const port = input("port", { type: "number", min: "1", max: "65535", value: String(mail?.port ?? 587) });
    const security = select("security", SECURITY, mail?.security ?? "starttls");
    const username = input("username", { value: mail?.username ?? "" });
    const password = input("password", { type: "password", autocomplete: "new-password", placeholder: channel && mail?.has_password ? "(unchanged)" : "" });
    const from = input("from", { type: "email", value: mail?.from_address ?? "" });
    const to = input("to", { value: mail?.to_addresses.join(", ") ?? "" });

    const webhookFields = h(
      "div",
      { class: "form-grid", id: `${prefix}-webhook` },
      field("URL", url),
      field("Format", format, "Slack, Mattermost and Teams take their incoming-webhook URL"),
      field("Signing secret", secret, keep ?? "at least 16 characters; receivers check X-Haltless-Signature with it"),
      h("div", { class: "field" }, generate),
    );
    const emailFields = h(
      "div",
      { class: "form-grid", id: `${prefix}-email` },
      field("SMTP host", host),
      field("Port", port),
      field("Security", security),
      field("Username", username, "empty: no login"),
      field("Password", password, channel ? keep : null),
      field("From", from),
      field("To", to, "comma-separated, up to 10"),
    );
    const showType = () => {
      webhookFields.hidden = type.value !== "webhook";
      emailFields.hidden = type.value !== "email";
    };
    type.addEventListener("change", showType);
    showType();

    const error = h("p", { class: "error", role: "alert", id: `${prefix}-error` });
    const form = h(
      "form",
      { class: "card rule-form", id: `${prefix}-form`, novalidate: true },
      h("h2", {}, channel ? `Edit ${channel.name}` : "New channel"),
      h("div", { class: "form-grid" }, field("Name", name), field("Type", type)),
      webhookFields,
      emailFields,
      error,
      h(
        "div",
        { class: "form-actions" },
        h("button", { type: "submit", class: "primary" }, channel ? "Save channel" : "Add channel"),
        channel ? h("button", { type: "button", class: "ghost", onclick: () => this.editor.replaceChildren() }, "Cancel") : null,
      ),
    );
    const settingsBody = () => {
      if (type.value === "webhook") {
        const webhook = { url: url.value.trim(), format: format.value };
        if (secret.value) webhook.secret = secret.value;
        return { webhook };
      }
      const email = {
        host: host.value.trim(),
        port: Number(port.value || 587),
        security: security.value,
        username: username.value.trim() || null,
        from_address: from.value.trim(),
        to_addresses: words(to.value),
      };
      if (password.value) email.password = password.value;
      return { email };
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!name.value.trim()) {
        error.textContent = "A channel needs a name.";
        return;
      }
      const body = { name: name.value.trim(), ...settingsBody() };
      try {
        if (channel) await this.api.patch(`/notification-channels/${channel.id}`, body);
        else await this.api.post("/notification-channels", { ...body, type: type.value });
        error.textContent = "";
        announce(`Channel ${body.name} ${channel ? "saved" : "added"}`);
        if (channel) this.editor.replaceChildren();
        else {
          form.reset();
          secret.type = "password";
          showType();
        }
        await this.load();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    return form;
  }
}
