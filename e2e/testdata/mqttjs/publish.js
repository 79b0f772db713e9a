// Publishes with MQTT.js over MQTT 5: N messages at QoS 1 and N at QoS 2,
// each with three user properties, a content type and correlation data,
// and waits for every acknowledgement. MQTT.js does not limit what it
// has in flight to the server's Receive Maximum, so this script does, as
// a well-behaved device must (MQTT 5 §4.9). Prints one JSON summary line.
//
//   node publish.js --url mqtt://127.0.0.1:1883 --topic fleet/js-1/temp --count 1000
const mqtt = require("mqtt");

function arg(name, def) {
  const i = process.argv.indexOf("--" + name);
  return i >= 0 ? process.argv[i + 1] : def;
}

const url = arg("url");
const topic = arg("topic");
const count = parseInt(arg("count", "1000"), 10);
const timeoutMs = parseInt(arg("timeout-ms", "60000"), 10);

const summary = { acked: { 1: 0, 2: 0 }, errors: [] };
const done = (code) => {
  process.stdout.write(JSON.stringify(summary) + "\n");
  process.exit(code);
};
setTimeout(() => { summary.errors.push("timeout"); done(1); }, timeoutMs);

const client = mqtt.connect(url, { protocolVersion: 5, clientId: "js-1", reconnectPeriod: 0, clean: true });
client.on("error", (err) => { summary.errors.push(String(err.message || err)); done(1); });
client.on("connect", async (connack) => {
  const window = (connack.properties && connack.properties.receiveMaximum) || 65535;
  summary.receiveMaximum = window;
  try {
    for (const qos of [1, 2]) {
      const pending = new Set();
      for (let i = 0; i < count; i++) {
        if (pending.size >= window) {
          await Promise.race(pending);
        }
        const properties = {
          userProperties: { unit: "celsius", schema: "v2", trace: `t-${qos}-${i}` },
          contentType: "application/json",
          correlationData: Buffer.from(`c-${qos}-${i}`),
        };
        const p = client.publishAsync(topic, JSON.stringify({ qos, seq: i }), { qos, properties })
          .then(() => { summary.acked[qos]++; pending.delete(p); });
        pending.add(p);
      }
      await Promise.all(pending);
    }
    await client.endAsync();
    done(0);
  } catch (err) {
    summary.errors.push(String(err.message || err));
    done(1);
  }
});
