"""The destination kinds the product ships; each has an adapter module in this package."""

KIND_CHOICES = [
    ("webhook", "Webhook (JSON batch)"),
    ("customerio", "Customer.io Track API"),
    ("amplitude", "Amplitude HTTP V2 API"),
    ("tracking_api", "Segment-compatible collector (/v1/batch)"),
    ("mixpanel", "Mixpanel Import API"),
    ("braze", "Braze /users/track"),
]
