"""The gateway's routers, one file per area."""
