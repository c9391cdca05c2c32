"""Pure planners: (a tenant's fleet, an input, now) in, a `core.plan.Plan` out; no I/O, no clock of their own.

One module per kind of change: readings, rules, alerts (user actions), maintenance, machines, offline. The
server's unit of work (server/service/changes.py) persists, commits, applies and publishes whatever they plan.
"""
