"""The staff UI (職員画面): server-rendered Japanese pages mounted at ``/staff`` (docs/intake.md)."""
