// Users (admins): add, change role, disable/enable, reset password, sign out everywhere, delete.
// Account (everyone): change your own password, sign out of every session.

import { announce, copyButton, field, fill, formatTime, h } from "./dom.js";

const ROLES = [
  ["viewer", "Viewer: sees everything, changes nothing"],
  ["operator", "Operator: acknowledges alerts, maintenance"],
  ["admin", "Admin: users, keys, machines, rules"],
];

/** A random password people can read out: 4 groups of 4 letters and digits (about 82 bits). */
export function generatedPassword() {
  const alphabet = "abcdefghjkmnpqrstuvwxyz23456789";
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const chars = [...bytes].map((b) => alphabet[b % alphabet.length]);
  return [0, 4, 8, 12].map((i) => chars.slice(i, i + 4).join("")).join("-");
}

export class UsersView {
  constructor({ store, api }) {
    this.store = store;
    this.api = api;
    this.users = [];
  }

  mount(container) {
    if (!this.store.can("admin")) {
      fill(
        container,
        h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Users")),
        h("p", { class: "muted", id: "users-denied" }, "Only admins manage users. Your own password and sessions are under "),
        h("p", {}, h("a", { href: "#/account" }, "Your account")),
      );
      return;
    }
    this.error = h("p", { class: "error", role: "alert", id: "users-error" });
    this.tbody = h("tbody");
    this.notice = h("div", { id: "user-notice", role: "status" });
    fill(
      container,
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Users")),
      h("p", { class: "muted" }, "Add people with a first password to pass on to them; they change it under “Your account”."),
      this.error,
      this.notice,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "rules", id: "users-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Email", "Role", "State", "Added"].map((t) => h("th", { scope: "col" }, t)),
              h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")),
            ),
          ),
          this.tbody,
        ),
      ),
      this.#form(),
    );
    this.load();
  }

  unmount() {}

  async load() {
    if (!this.tbody) return;
    try {
      this.users = await this.api.get("/users");
      this.error.textContent = "";
    } catch (error) {
      this.error.textContent = `Could not load the users: ${error.message}`;
    }
    this.#render();
  }

  #render() {
    const me = this.store.me.user_id;
    this.tbody.replaceChildren(
      ...this.users.map((user) => {
        const role = h(
          "select",
          { id: `role-${user.id}`, "aria-label": `Role of ${user.email}`, class: "role-select" },
          ...ROLES.map(([value]) => h("option", { value }, value)),
        );
        role.value = user.role;
        role.addEventListener("change", () => this.#change(user, { role: role.value }, `${user.email} is now ${role.value}`));
        const named = (label) => [label, h("span", { class: "visually-hidden" }, ` ${user.email}`)];
        return h(
          "tr",
          { dataset: { userId: user.id, disabled: String(user.disabled) } },
          h("th", { scope: "row" }, user.email, user.id === me ? h("span", { class: "muted" }, " (you)") : null),
          h("td", {}, role),
          h("td", { class: "user-state" }, user.disabled ? "⏸ Disabled" : "✔ Active"),
          h("td", {}, formatTime(user.created_at)),
          h(
            "td",
            { class: "actions" },
            h(
              "button",
              {
                type: "button",
                class: "toggle",
                onclick: () =>
                  this.#change(user, { disabled: !user.disabled }, `${user.email} ${user.disabled ? "enabled" : "disabled"}`),
              },
              named(user.disabled ? "Enable" : "Disable"),
            ),
            h("button", { type: "button", class: "reset-password", onclick: () => this.#resetPassword(user) }, named("Reset password")),
            h("button", { type: "button", class: "sign-out", onclick: () => this.#signOut(user) }, named("Sign out everywhere")),
            h("button", { type: "button", class: "danger delete", onclick: () => this.#delete(user) }, named("Delete")),
          ),
        );
      }),
    );
  }

  async #change(user, body, done) {
    try {
      await this.api.patch(`/users/${user.id}`, body);
      announce(done);
      this.notice.replaceChildren();
    } catch (error) {
      this.error.textContent = error.message;
    }
    await this.load();
  }

  /** Show a password once, with a copy button, for the admin to pass on. */
  #showPassword(title, password) {
    const secret = h("code", { class: "secret", id: "shown-password" }, password);
    fill(
      this.notice,
      h(
        "div",
        { class: "card" },
        h("p", {}, title),
        secret,
        " ",
        copyButton("Copy password", () => password, { fallbackNode: secret, id: "copy-password" }),
      ),
    );
  }

  async #resetPassword(user) {
    if (!window.confirm(`Give ${user.email} a new password? Every session of theirs ends.`)) return;
    const password = generatedPassword();
    try {
      await this.api.patch(`/users/${user.id}`, { password });
      this.error.textContent = "";
      this.#showPassword(`New password of ${user.email} (shown once; they can change it under “Your account”):`, password);
      announce(`New password set for ${user.email}`);
    } catch (error) {
      this.error.textContent = error.message;
    }
  }

  async #signOut(user) {
    try {
      await this.api.delete(`/users/${user.id}/sessions`);
      announce(`${user.email} is signed out everywhere`);
    } catch (error) {
      this.error.textContent = error.message;
    }
  }

  async #delete(user) {
    if (!window.confirm(`Delete the user ${user.email}? Their sessions end; alerts they handled keep their record.`)) return;
    try {
      await this.api.delete(`/users/${user.id}`);
      announce(`${user.email} deleted`);
    } catch (error) {
      this.error.textContent = error.message;
    }
    await this.load();
  }

  #form() {
    const email = h("input", { id: "new-user-email", name: "email", type: "email", required: true, autocomplete: "off" });
    const password = h("input", { id: "new-user-password", name: "password", minlength: "8", required: true, autocomplete: "new-password" });
    const role = h("select", { id: "new-user-role", name: "role" }, ...ROLES.map(([value, label]) => h("option", { value }, label)));
    const error = h("p", { class: "error", role: "alert", id: "new-user-error" });
    const form = h(
      "form",
      { class: "card rule-form", id: "new-user-form" },
      h("h2", {}, "Add a user"),
      h(
        "div",
        { class: "form-grid" },
        field("Email", email),
        field("First password", password, "at least 8 characters"),
        field("Role", role),
      ),
      error,
      h(
        "div",
        { class: "form-actions" },
        h("button", { type: "button", class: "ghost", id: "generate-password", onclick: () => (password.value = generatedPassword()) }, "Generate a password"),
        h("button", { type: "submit", class: "primary" }, "Add user"),
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { email: email.value.trim(), password: password.value, role: role.value };
      try {
        await this.api.post("/users", body);
        error.textContent = "";
        this.#showPassword(`${body.email} can sign in now with this password (shown once):`, body.password);
        form.reset();
        announce(`User ${body.email} added`);
        await this.load();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    return form;
  }
}

export class AccountView {
  constructor({ store, api, signedOut }) {
    this.store = store;
    this.api = api;
    this.signedOut = signedOut;
  }

  mount(container) {
    const current = h("input", { id: "current-password", type: "password", required: true, autocomplete: "current-password" });
    const next = h("input", { id: "new-password", type: "password", minlength: "8", required: true, autocomplete: "new-password" });
    const repeat = h("input", { id: "repeat-password", type: "password", minlength: "8", required: true, autocomplete: "new-password" });
    const error = h("p", { class: "error", role: "alert", id: "password-error" });
    const done = h("p", { role: "status", id: "password-done" });
    const form = h(
      "form",
      { class: "card rule-form", id: "password-form" },
      h("h2", {}, "Change your password"),
      h("div", { class: "form-grid" }, field("Current password", current), field("New password", next, "at least 8 characters"), field("New password again", repeat)),
      error,
      done,
      h("button", { type: "submit", class: "primary" }, "Change password"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      done.textContent = "";
      if (next.value !== repeat.value) {
        error.textContent = "The two new passwords differ.";
        return;
      }
      try {
        await this.api.renewing(this.api.post("/auth/password", { current_password: current.value, new_password: next.value }));
        error.textContent = "";
        form.reset();
        done.textContent = "Password changed. Your other sessions have ended; this one goes on.";
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    fill(
      container,
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Your account")),
      h("p", {}, `Signed in as ${this.store.me.email} (${this.store.me.role}).`),
      form,
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Sessions"),
        h("p", { class: "muted" }, "Lost a laptop or left a wall screen signed in? End every session of yours, this one too."),
        h(
          "button",
          {
            type: "button",
            class: "danger",
            id: "sign-out-everywhere",
            onclick: async () => {
              if (!window.confirm("Sign out of every session, this one too?")) return;
              try {
                await this.api.delete("/auth/sessions");
              } catch (failure) {
                error.textContent = failure.message;
                return;
              }
              await this.signedOut("You are signed out everywhere. Sign in again.");
            },
          },
          "Sign out everywhere",
        ),
      ),
    );
  }

  unmount() {}
}
