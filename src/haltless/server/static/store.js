// What the dashboard knows: machines with their latest values, open alerts, the user. Loaded over REST,
// kept current by the socket's events; views subscribe and are told what changed once per frame.

export const STATUS = {
  critical: { label: "Critical", icon: "✖", rank: 0 },
  warning: { label: "Warning", icon: "▲", rank: 1 },
  offline: { label: "Offline", icon: "○", rank: 2 },
  maintenance: { label: "Maintenance", icon: "⚙", rank: 3 },
  healthy: { label: "Healthy", icon: "✓", rank: 4 },
};

export const SEVERITY = {
  critical: { label: "Critical", icon: "✖", rank: 0 },
  warning: { label: "Warning", icon: "▲", rank: 1 },
  info: { label: "Info", icon: "ℹ", rank: 2 },
};

export function emptyChange() {
  return {
    fleet: false,
    unknownMachine: false,
    machines: new Set(),
    alerts: false,
    readings: [],
    newAlerts: [],
    statusChanges: [],
  };
}

const ROLE_RANK = { viewer: 0, operator: 1, admin: 2 };

export class Store {
  constructor() {
    this.me = null;
    this.machines = new Map(); // id → {id, name, location, tags, status, lastReadingAt, latest: Map(metric → reading)}
    this.alerts = new Map(); // open alerts: id → alert
    this.listeners = new Set();
  }

  can(role) {
    return this.me !== null && ROLE_RANK[this.me.role] >= ROLE_RANK[role];
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tell every view what changed (see emptyChange). */
  notify(change) {
    for (const listener of this.listeners) listener(change);
  }

  setFleet(items) {
    this.machines.clear();
    for (const item of items) {
      const latest = new Map();
      for (const reading of item.latest || []) latest.set(reading.metric_name, reading);
      this.machines.set(item.id, {
        id: item.id,
        name: item.name,
        location: item.location,
        tags: item.tags || [],
        status: item.status,
        lastReadingAt: item.last_seen_at ? Date.parse(item.last_seen_at) : null,
        latest,
      });
    }
    this.notify({ ...emptyChange(), fleet: true, machines: new Set(this.machines.keys()) });
  }

  setAlerts(items) {
    this.alerts.clear();
    for (const alert of items) this.alerts.set(alert.id, alert);
    this.notify({ ...emptyChange(), alerts: true });
  }

  upsertAlert(alert) {
    if (alert.state === "resolved") this.alerts.delete(alert.id);
    else this.alerts.set(alert.id, alert);
    this.notify({ ...emptyChange(), alerts: true });
  }

  /** Fold one frame's worth of socket events into the state, then notify once. */
  applyBatch(events) {
    const change = emptyChange();
    for (const event of events) {
      switch (event.type) {
        case "sensor_update": {
          const machine = this.machines.get(event.machine_id);
          change.readings.push(event);
          if (!machine) {
            change.unknownMachine = true; // a machine we have not seen: reload the list
            break;
          }
          const previous = machine.latest.get(event.metric_name);
          if (!previous || Date.parse(previous.timestamp) <= Date.parse(event.timestamp)) {
            machine.latest.set(event.metric_name, {
              metric_name: event.metric_name,
              value: event.value,
              unit: event.unit,
              timestamp: event.timestamp,
            });
          }
          const at = Date.parse(event.timestamp);
          if (!machine.lastReadingAt || at > machine.lastReadingAt) machine.lastReadingAt = at;
          change.machines.add(machine.id);
          break;
        }
        case "machine_status": {
          const machine = this.machines.get(event.machine_id);
          if (!machine) {
            change.unknownMachine = true;
            break;
          }
          machine.status = event.new_status;
          change.machines.add(machine.id);
          change.statusChanges.push(event);
          break;
        }
        case "alert": {
          const alert = {
            id: event.alert_id,
            machine_id: event.machine_id,
            severity: event.severity,
            message: event.message,
            metric_value: event.metric_value,
            threshold_value: event.threshold_value,
            created_at: event.created_at,
            state: "active",
          };
          this.alerts.set(alert.id, alert);
          change.alerts = true;
          change.newAlerts.push(alert);
          break;
        }
        case "alert_acknowledged": {
          const alert = this.alerts.get(event.alert_id);
          if (alert) {
            alert.state = "acknowledged";
            alert.acknowledged_at = event.acknowledged_at;
            alert.acknowledged_by = event.acknowledged_by;
            alert.acknowledge_comment = event.comment ?? null;
            alert.revision = (alert.revision ?? 0) + 1; // an open history panel reloads
            change.alerts = true;
          }
          break;
        }
        case "alert_shelved":
        case "alert_unshelved":
        case "alert_escalated": {
          const alert = this.alerts.get(event.alert_id);
          if (alert) {
            if (event.type === "alert_shelved") alert.shelved_until = event.shelved_until;
            if (event.type === "alert_unshelved") alert.shelved_until = null;
            if (event.type === "alert_escalated") alert.severity = event.severity;
            alert.revision = (alert.revision ?? 0) + 1;
            change.alerts = true;
          }
          break;
        }
        case "alert_flapping": {
          // Sent right after the `alert` event of an alert that opens flapping (docs/websocket.md).
          const alert = this.alerts.get(event.alert_id);
          if (alert) {
            alert.flapping = true;
            change.alerts = true;
          }
          break;
        }
        case "alert_resolved":
          if (this.alerts.delete(event.alert_id)) change.alerts = true;
          break;
        default:
          break; // types this dashboard does not know are ignored, as the guide asks
      }
    }
    this.notify(change);
  }

  machineName(id) {
    return this.machines.get(id)?.name ?? id.slice(0, 8);
  }
}
