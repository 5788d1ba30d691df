"""The reference applications of statetype (DESIGN section 9), each tested under tests/examples/."""
