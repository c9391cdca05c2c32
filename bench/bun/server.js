// Anchor "Bun" of the fan-out and memory benches: the dashboard handshake on Bun's built-in uWebSockets pub/sub.
//
// `bun server.js` reads one JSON job line on stdin: {"port": N, "tokens": {token: tenant}}. Sockets follow our
// handshake: HTTP upgrade at /api/v1/ws/dashboard, the token as the first text frame (4001 if unknown, 4002 if
// none within 10 s), a heartbeat after authentication, then the tenant's topic. Readings arrive as POST batches
// of the same JSON body our server gets (any other path on the same port); each reading becomes one guide-shaped
// `sensor_update` message passed to `server.publish(tenant, message)`, as baseline B passes each to broadcast().
// No validation, storage or rules. No compression, no pings, no idle timeout (the other servers have none either).
// A line "stop" on stdin, or its end, stops the process.

const WS_PATH = "/api/v1/ws/dashboard";
const AUTH_TIMEOUT_MS = 10_000;

// The guide's timestamp: RFC 3339, UTC, microseconds (what haltless.core.timefmt.format_micros writes).
function formatMicros(micros) {
  const millis = Math.floor(micros / 1000);
  const iso = new Date(millis).toISOString(); // 2026-03-02T00:00:00.123Z
  const fraction = String(micros % 1_000_000).padStart(6, "0");
  return `${iso.slice(0, 19)}.${fraction}Z`;
}

function nowMicros() {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

function sensorUpdate(reading, received) {
  const ts = reading.timestamp ? Date.parse(reading.timestamp) * 1000 : received;
  return JSON.stringify({
    type: "sensor_update",
    machine_id: reading.machine_id,
    metric_name: reading.metric_name,
    value: Number(reading.value),
    unit: reading.unit ?? "",
    timestamp: formatMicros(ts),
  });
}

async function main() {
  const lines = console[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done) return;
  const job = JSON.parse(first.value);
  const tokens = new Map(Object.entries(job.tokens));

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: job.port,
    idleTimeout: 0,
    async fetch(req, server) {
      const url = new URL(req.url);
      if (url.pathname === WS_PATH) {
        if (server.upgrade(req, { data: { tenant: null, timer: null } })) return undefined;
        return new Response("upgrade failed", { status: 400 });
      }
      if (req.method !== "POST") return new Response("not found", { status: 404 });
      const token = (req.headers.get("authorization") ?? "").split(" ")[1] ?? "";
      const tenant = tokens.get(token);
      if (tenant === undefined) return new Response("unknown token", { status: 401 });
      const { readings } = await req.json();
      const received = nowMicros();
      for (const reading of readings) server.publish(tenant, sensorUpdate(reading, received));
      return Response.json({ accepted: readings.length, duplicates: 0, rejected: [] }, { status: 202 });
    },
    websocket: {
      perMessageDeflate: false,
      sendPings: false,
      idleTimeout: 0,
      maxPayloadLength: 1024 * 1024,
      open(ws) {
        ws.data.timer = setTimeout(() => ws.close(4002, "authentication timeout"), AUTH_TIMEOUT_MS);
      },
      message(ws, message) {
        if (ws.data.tenant !== null) return;
        clearTimeout(ws.data.timer);
        ws.data.timer = null;
        const tenant = typeof message === "string" ? tokens.get(message) : undefined;
        if (tenant === undefined) {
          ws.close(4001, "invalid token");
          return;
        }
        ws.data.tenant = tenant;
        ws.send(JSON.stringify({ type: "heartbeat", server_time: formatMicros(nowMicros()) }));
        ws.subscribe(tenant);
      },
      close(ws) {
        if (ws.data.timer !== null) clearTimeout(ws.data.timer);
      },
    },
  });

  console.log(JSON.stringify({ event: "listening", port: server.port, bun: Bun.version }));
  for (;;) {
    const line = await lines.next();
    if (line.done || line.value.trim() === "stop") break;
  }
  server.stop(true);
  process.exit(0);
}

await main();
