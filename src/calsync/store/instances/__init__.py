"""The instances aggregate: imported event instances, written by sync and read by List Events."""
