"""Networks of the MIDG generator, kept apart from losses, optimisers and loops."""
