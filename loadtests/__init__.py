"""Load tests: a deterministic lead generator (``leads``) and a locust scenario (``locustfile``)."""
