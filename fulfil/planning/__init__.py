"""Planning a batch: load it columnar, allocate it with a solver, write the plan back in one transaction."""
