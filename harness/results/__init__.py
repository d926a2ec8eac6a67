"""Results: one versioned document per case, written the moment the case finishes."""
