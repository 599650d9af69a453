"""Storage engines behind the core's ports: the embedded local engine, and (later) AWS."""
