"""The relay server (連携サーバ) in the DMZ: verify, scan, forward once, erase. Built in a later issue."""
