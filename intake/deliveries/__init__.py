"""Receiving packages from the relay: re-verify, store once, answer with a receipt."""
