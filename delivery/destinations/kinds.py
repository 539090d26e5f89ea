"""The destination kinds the product ships; each has an adapter module in this package."""

KIND_CHOICES = [
    ("webhook", "Webhook (JSON batch)"),
    ("customerio", "Customer.io Track API"),
    ("mixpanel", "Mixpanel Import API"),
    ("braze", "Braze /users/track"),
]
