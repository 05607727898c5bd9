"""Programs: programs and their phases, versioned event strategies, enrollments (announced through the
core's events: `programs/events.py`)."""
