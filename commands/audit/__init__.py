"""What auditors read: a device's events in order and the device as it was, straight from the event
store (never from read models)."""
