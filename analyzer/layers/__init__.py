"""Layer rules: shapes, costs, memory and the blob limits of each framework."""
