"""The edge agent: sources capture readings, an on-disk buffer keeps them, an uplink forwards them."""
