"""Prefect tasks that more than one flow runs, one module per domain: a flow module holds only
its own flow and the tasks no other flow needs."""
