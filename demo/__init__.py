"""`make demo` / `make smoke`: the whole chain on one machine, as operators will meet it."""
