// The RudderStack JS SDK (its "bundled" build, plugins included) as a page loads it, pointed at our
// tracking API with no CDN: the source configuration it would fetch from RudderStack's control plane is
// given inline, and no polyfill is fetched.
import { RudderAnalytics } from "@rudderstack/analytics-js/bundled";

window.startRudderStack = (writeKey, dataPlaneUrl, options) =>
  new Promise((resolve) => {
    const analytics = new RudderAnalytics();
    const source = { id: "web", name: "Web shop", writeKey, enabled: true, workspaceId: "test", config: {}, destinations: [] };
    analytics.load(writeKey, dataPlaneUrl, {
      getSourceConfig: () => ({ source }),
      polyfillIfRequired: false,
      ...options,
      onLoaded: () => resolve(analytics),
    });
  });
