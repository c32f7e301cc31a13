"""Forwarding stored applications to the business system of their procedure (P6)."""
