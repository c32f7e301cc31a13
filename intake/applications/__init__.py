"""Applications as staff see them: status workflow, scoped queries, detail views."""
