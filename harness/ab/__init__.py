"""A/B: builds measured against each other in one run on one node (the plan's `ab:` section, `llmqual ab`)."""
