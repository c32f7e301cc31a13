"""Status notices for the portal, waiting for the relay to pull them (the intake never connects out)."""
