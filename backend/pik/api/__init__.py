"""The HTTP API: one set of routes, served by Lambda on AWS and by `pik serve` locally."""
