"""The reference applications of statetype, each tested under tests/examples/."""
