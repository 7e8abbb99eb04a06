"""One router per resource: score, extract, openrlhf, health, metrics."""
