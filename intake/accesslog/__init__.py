"""The access log (P13): every view and update of personal data, hash-chained."""
