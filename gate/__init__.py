"""Per-tenant, per-route go/no-go from a policy and honest statistics; see issue 5."""
