"""The domain service: the unit of work and everything that changes a tenant's state through it (no HTTP here)."""
