"""Application status workflow (到達 → 受付 → 審査中 …) and its history. Built in a later issue."""
