"""Built-in A/B testing: experiments, assignment and statistics."""
