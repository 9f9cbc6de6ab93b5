"""Reports for Theodolite: robustness curves and example grids."""
