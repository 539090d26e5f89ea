// `node server_side.mjs <segment|rudderstack> <host> <writeKey> <n>`: n tracks, an identify and a group
// through a server-side Node SDK, flushed before it exits (tests/sdks/node.py runs it).
import { Analytics } from "@segment/analytics-node";
import RudderAnalytics from "@rudderstack/rudder-sdk-node";

const [sdk, host, writeKey, count] = process.argv.slice(2);
const n = Number(count);
if (sdk === "segment") {
  const analytics = new Analytics({ writeKey, host, flushAt: 5, flushInterval: 200 });
  for (let i = 0; i < n; i++) analytics.track({ userId: `user-${i}`, event: "Order Completed", properties: { order: i } });
  analytics.identify({ userId: "user-0", traits: { plan: "pro" } });
  analytics.group({ userId: "user-0", groupId: "acme" });
  await analytics.closeAndFlush({ timeout: 10000 });
} else {
  const client = new RudderAnalytics(writeKey, { dataPlaneUrl: host, flushAt: 5, flushInterval: 200 });
  for (let i = 0; i < n; i++) client.track({ userId: `user-${i}`, event: "Order Completed", properties: { order: i } });
  client.identify({ userId: "user-0", traits: { plan: "pro" } });
  client.group({ userId: "user-0", groupId: "acme" });
  await client.flush();
}
console.log("sent");
