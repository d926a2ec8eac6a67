"""Loads the llmqual plugin for runs from this checkout (an installed llmqual registers it as `harness.plugin`)."""

pytest_plugins = ["harness.plugin"]
