"""Stand-ins for a real cluster and real providers, for tests and the demo."""
