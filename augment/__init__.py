"""The generator (mask inpainting, edge and defect generation blocks) and its baselines."""
