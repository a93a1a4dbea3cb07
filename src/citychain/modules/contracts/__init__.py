"""Rule contracts: escrowed funds that the chain releases or refunds by CEL conditions."""
