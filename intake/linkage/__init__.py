"""宛名番号 linkage (番号紐付情報): certificate serial → 宛名番号, with manual fallback (P9)."""
