"""Load generation: workloads (what to send) and schedules and loops (when to send it)."""
