"""The bank module: denominations, balances, total supply, mint, burn and transfer."""
