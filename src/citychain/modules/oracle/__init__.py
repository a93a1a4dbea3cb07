"""The oracle module: registered devices, anchored reading batches and aggregated feeds."""
