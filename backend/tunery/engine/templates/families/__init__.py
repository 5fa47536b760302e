"""Template families, one module per group; importing a module registers its templates."""
