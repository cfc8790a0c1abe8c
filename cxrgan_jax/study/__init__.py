"""Studies: named arms x seeds of ordinary training runs, scored over time and reported."""
