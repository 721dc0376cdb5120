"""Device gateway: device calls from the event store to the broker, answers and presence back."""
