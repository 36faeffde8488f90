"""Tools that serve operators: the chaos run."""
