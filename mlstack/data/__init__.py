"""The tabular example's data: a seeded generator, pandera contracts, validation and its report."""
