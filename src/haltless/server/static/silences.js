// Silences: everyone sees them (active, upcoming, expired); operators and admins create them (matchers, a start
// that may lie in the future, an end, a comment) and expire them early. Alerts inside a silence are still
// recorded, only not notified. docs/notifications.md ("Silences").

import { announce, field, fill, formatTime, h } from "./dom.js";
import { describeMatchers, matcherFields, named, table } from "./matchers.js";

const GROUPS = [
  ["active", "Active"],
  ["upcoming", "Upcoming"],
  ["expired", "Expired"],
];

/** A silence ended before it started (expired while upcoming: its end was moved to its start). */
function cancelled(silence) {
  return Date.parse(silence.ends_at) <= Date.parse(silence.starts_at);
}

/** active, upcoming or expired, as of `now` (ms). */
export function silenceState(silence, now = Date.now()) {
  if (silence.active) return "active";
  return Date.parse(silence.starts_at) > now && !cancelled(silence) ? "upcoming" : "expired";
}

/** A Date as the value of a datetime-local input (the browser's time zone, minutes). */
export function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export class SilencesView {
  constructor({ store, api }) {
    this.store = store;
    this.api = api;
    this.silences = [];
    this.rules = [];
    this.emails = new Map();
  }

  mount(container) {
    const operator = this.store.can("operator");
    this.error = h("p", { class: "error", role: "alert", id: "silences-error" });
    this.bodies = Object.fromEntries(GROUPS.map(([state]) => [state, h("tbody")]));
    this.creator = h("div", { id: "silence-creator" });
    fill(
      container,
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Silences")),
      h(
        "p",
        { class: "muted" },
        operator
          ? "A silence holds back the notifications of matching alerts from its start to its end; the alerts are still recorded and shown."
          : "A silence holds back the notifications of matching alerts; operators and admins create and end them.",
      ),
      this.error,
      ...GROUPS.map(([state, title]) =>
        h(
          "section",
          { class: "silence-group", "aria-labelledby": `silences-${state}-title` },
          h("h2", { id: `silences-${state}-title` }, title),
          table(`silences-${state}`, ["Matches", "Starts", "Ends", "Comment", "Created by", "Alerts held"], this.bodies[state], operator),
        ),
      ),
      this.creator,
    );
    this.load();
  }

  unmount() {}

  async load() {
    try {
      [this.silences, this.rules] = await Promise.all([this.api.get("/silences"), this.api.get("/alert-rules")]);
      if (this.store.can("admin") && this.emails.size === 0) {
        for (const user of await this.api.get("/users")) this.emails.set(user.id, user.email);
      }
      this.error.textContent = "";
    } catch (error) {
      this.error.textContent = `Could not load the silences: ${error.message}`;
    }
    this.#render();
    if (this.store.can("operator") && !this.creator.firstChild) fill(this.creator, this.#form());
  }

  #creator(id) {
    if (id === this.store.me.user_id) return `you (${this.store.me.email})`;
    return this.emails.get(id) ?? `user ${id.slice(0, 8)}`;
  }

  #render() {
    const operator = this.store.can("operator");
    const now = Date.now();
    const context = { store: this.store, rules: this.rules };
    for (const [state] of GROUPS) {
      const mine = this.silences
        .filter((s) => silenceState(s, now) === state)
        .sort((a, b) => (state === "expired" ? Date.parse(b.ends_at) - Date.parse(a.ends_at) : Date.parse(a.starts_at) - Date.parse(b.starts_at)));
      if (mine.length === 0) {
        this.bodies[state].replaceChildren(h("tr", {}, h("td", { colspan: operator ? 7 : 6, class: "muted" }, `No ${state} silences.`)));
        continue;
      }
      this.bodies[state].replaceChildren(
        ...mine.map((silence) =>
          h(
            "tr",
            { dataset: { silenceId: silence.id, state } },
            h("th", { scope: "row" }, describeMatchers(silence.matchers, context)),
            h("td", {}, formatTime(silence.starts_at)),
            h("td", {}, cancelled(silence) ? "cancelled before it started" : formatTime(silence.ends_at)),
            h("td", { class: "silence-comment" }, silence.comment),
            h("td", {}, this.#creator(silence.created_by)),
            h("td", { class: "num" }, String(silence.silenced_alert_ids.length)),
            operator
              ? h(
                  "td",
                  { class: "actions" },
                  state === "expired"
                    ? null
                    : h("button", { type: "button", class: "expire", onclick: () => this.#expire(silence) }, named(state === "upcoming" ? "Cancel silence" : "Expire now", silence.comment)),
                )
              : null,
          ),
        ),
      );
    }
  }

  async #expire(silence) {
    try {
      await this.api.post(`/silences/${silence.id}/expire`);
      announce(`Silence “${silence.comment}” ended`);
    } catch (error) {
      this.error.textContent = error.message;
    }
    await this.load();
  }

  #form() {
    const matchers = matcherFields("new-silence", { store: this.store, rules: this.rules });
    const starts = h("input", { id: "new-silence-starts", type: "datetime-local" });
    const ends = h("input", { id: "new-silence-ends", type: "datetime-local", required: true, value: localInput(new Date(Date.now() + 2 * 3600_000)) });
    const comment = h("input", { id: "new-silence-comment", required: true, maxlength: "500", placeholder: "planned rebuild of the spindle" });
    const error = h("p", { class: "error", role: "alert", id: "new-silence-error" });
    const form = h(
      "form",
      { class: "card rule-form", id: "new-silence-form", novalidate: true },
      h("h2", {}, "New silence"),
      h("p", { class: "muted" }, "Name at least one matcher; an alert is silenced when it matches every one given."),
      h("div", { class: "form-grid" }, ...matchers.nodes.filter(Boolean)),
      h(
        "div",
        { class: "form-grid wide" },
        field("Starts", starts, "empty: now; may lie in the future (your time zone)"),
        field("Ends", ends),
        field("Comment", comment, "why, for whoever sees it"),
      ),
      error,
      h("button", { type: "submit", class: "primary" }, "Create silence"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const when = (input) => (input.value ? new Date(input.value) : null);
      const start = when(starts);
      const end = when(ends);
      if (!end || Number.isNaN(end.getTime())) {
        error.textContent = "A silence needs an end.";
        return;
      }
      const body = { matchers: matchers.read(), ends_at: end.toISOString(), comment: comment.value.trim() };
      if (start) body.starts_at = start.toISOString();
      try {
        await this.api.post("/silences", body);
        error.textContent = "";
        announce("Silence created");
        this.creator.replaceChildren();
        await this.load();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    return form;
  }
}
