"""Resilience: circuit breakers and retry policies shared by every part that calls out."""
