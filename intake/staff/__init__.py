"""Staff users, their login sessions and what each may see and do (P12)."""
