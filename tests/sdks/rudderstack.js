// The RudderStack JS SDK (v3, the build with its plugins inside: nothing is loaded from a CDN) as a page
// loads it. The source configuration it would fetch from RudderStack's control plane is given inline.
import { RudderAnalytics } from "@rudderstack/analytics-js/bundled";

window.startRudderStack = (writeKey, dataPlaneUrl) =>
  new Promise((resolve) => {
    const analytics = new RudderAnalytics();
    const source = { id: "web", name: "Web shop", writeKey, enabled: true, workspaceId: "ws", config: {}, destinations: [] };
    analytics.load(writeKey, dataPlaneUrl, {
      getSourceConfig: () => ({ source }),
      onLoaded: () => resolve(analytics),
    });
    window.rudderanalytics = analytics;
  });
