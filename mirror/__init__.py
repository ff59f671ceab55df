"""The tap in front of the production route, capture into Redis Streams, and (later) dispatch and replay."""
