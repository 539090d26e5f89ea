// `node server_side.mjs <segment|legacy|rudderstack> <host> <writeKey> <n>`: n tracks, an identify and a
// group through a server-side Node SDK, flushed before it exits (tests/sdks/node.py runs it).
import { Analytics } from "@segment/analytics-node";
import RudderAnalytics from "@rudderstack/rudder-sdk-node";
import LegacyAnalytics from "analytics-node"; // Segment's deprecated client, still in many back ends

const [sdk, host, writeKey, count] = process.argv.slice(2);
const options = { flushAt: 5, flushInterval: 200 };
const clients = {
  segment: () => new Analytics({ writeKey, host, ...options }),
  legacy: () => new LegacyAnalytics(writeKey, { host, ...options }),
  rudderstack: () => new RudderAnalytics(writeKey, { dataPlaneUrl: host, ...options }),
};
const client = clients[sdk]();
for (let i = 0; i < Number(count); i++) {
  client.track({ userId: `user-${i}`, event: "Order Completed", properties: { order: i } });
}
client.identify({ userId: "user-0", traits: { plan: "pro" } });
client.group({ userId: "user-0", groupId: "acme" });
await (sdk === "segment" ? client.closeAndFlush({ timeout: 10000 }) : client.flush());
console.log("sent");
