// @segment/analytics-next as a page loads it, pointed at our tracking API with no CDN: the settings it
// would fetch from cdn.segment.com are given inline, so only our host is asked for anything.
import { AnalyticsBrowser } from "@segment/analytics-next";

window.startSegment = (writeKey, apiHost) => {
  const segment = { apiKey: writeKey, apiHost, protocol: "http" };
  window.analytics = AnalyticsBrowser.load(
    { writeKey, cdnSettings: { integrations: { "Segment.io": segment } } },
    { integrations: { "Segment.io": segment } },
  );
  return window.analytics;
};
