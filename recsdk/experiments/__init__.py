"""A/B testing: split traffic between pipeline configurations and compare the variants."""
