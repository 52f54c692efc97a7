// Placeholder replaced below once the protocol exists.
